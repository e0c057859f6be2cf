"""OutboxRepository: every SQL statement on the `alerts` table (the outbox).

Claiming takes a lease (`claimed_until`, `claimed_by`) in a short transaction. On PostgreSQL the
candidate rows are locked with `FOR UPDATE SKIP LOCKED`, so two dispatchers never claim the same row;
the lease then keeps the row theirs while the POST runs outside any transaction. On SQLite (one
process) the same statement runs without the lock clause and the guarded UPDATE does the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Table, and_, case, func, insert, or_, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.alerts.digest import new_digest_id
from app.kit.repository import RepositoryBase
from app.models import Alert, AlertPriority, AlertStatus, UTCDateTime

OPEN_STATUSES = (AlertStatus.pending, AlertStatus.retrying)
_sqlite_locks: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()


def write_lock(sessionmaker: async_sessionmaker[AsyncSession]) -> AbstractAsyncContextManager[Any]:
    """One outbox writer at a time per SQLite database in this process.

    SQLite has one write lock per file and its busy handler sleeps up to 100 ms between tries, so
    writers queueing on an asyncio lock (FIFO, no sleeps) are far faster than writers racing for it.
    PostgreSQL takes row locks and needs none of this.
    """
    bind = sessionmaker.kw.get("bind")
    if bind is None or bind.dialect.name != "sqlite":
        return contextlib.nullcontext()
    lock = _sqlite_locks.get(bind.sync_engine)
    if lock is None:
        lock = _sqlite_locks[bind.sync_engine] = asyncio.Lock()
    return lock


def _claimable(now: datetime) -> Any:
    return and_(
        Alert.status.in_(OPEN_STATUSES),
        or_(Alert.claimed_until.is_(None), Alert.claimed_until < now),
    )


class OutboxRepository(RepositoryBase[Alert]):
    model = Alert

    async def add_many(self, rows: Iterable[dict[str, Any]]) -> None:
        """One executemany INSERT (Core): no ORM objects built only to be flushed and thrown away."""
        values = list(rows)
        if values:
            table = Alert.__table__
            assert isinstance(table, Table)  # the model's own table (SQLAlchemy types it as any FromClause)
            await self.session.execute(insert(table), values)

    async def add_suppressed(self, counts: dict[str, int]) -> None:
        for alert_id, n in counts.items():
            await self.session.execute(
                update(Alert)
                .where(Alert.id == alert_id)
                .values(suppressed_count=Alert.suppressed_count + n)
                .execution_options(synchronize_session=False)
            )

    async def alerted_pairs(self, event_ids: Iterable[str]) -> set[tuple[int, str]]:
        """(rule_id, event_id) pairs that already have an alert: an update never re-alerts."""
        ids = list(set(event_ids))
        if not ids:
            return set()
        stmt = select(Alert.rule_id, Alert.event_id).where(Alert.event_id.in_(ids)).distinct()
        return {(r, e) for r, e in (await self.session.execute(stmt)).all() if r is not None}

    async def claim(
        self,
        owner: str,
        now: datetime,
        lease_until: datetime,
        *,
        priority: AlertPriority,
        limit: int,
        exclude_webhooks: Sequence[int] = (),
    ) -> list[Alert]:
        """Due rows of one priority, leased to `owner`; digest rows get one digest_id per webhook."""
        return await self.claim_due(owner, now, lease_until, {priority: limit}, exclude_webhooks)

    async def claim_due(
        self,
        owner: str,
        now: datetime,
        lease_until: datetime,
        limits: Mapping[AlertPriority, int],
        exclude_webhooks: Sequence[int] = (),
    ) -> list[Alert]:
        """Due rows of each priority (up to its limit), leased to `owner` in one UPDATE ... RETURNING.

        Each priority's candidates are a locking subquery (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so
        one statement claims immediate and digest rows alike instead of one round trip per priority.
        """
        exclude = list(exclude_webhooks)
        parts = []
        for priority, limit in limits.items():
            if limit <= 0:
                continue
            stmt = select(Alert.id).where(
                _claimable(now), Alert.next_attempt_at <= now, Alert.priority == priority
            )
            if exclude:
                stmt = stmt.where(Alert.webhook_id.not_in(exclude))
            stmt = stmt.order_by(Alert.next_attempt_at, Alert.id).limit(limit)
            # materialised: evaluated once, never re-run per row (it would then see this UPDATE's leases)
            due = stmt.with_for_update(skip_locked=True).cte(f"due_{priority}")
            parts.append(select(due.prefix_with("MATERIALIZED", dialect="postgresql").c.id))
        if not parts:
            return []
        return await self._take(Alert.id.in_(union_all(*parts)), owner, now, lease_until)

    async def claim_probe(
        self, owner: str, webhook_id: int, now: datetime, lease_until: datetime
    ) -> list[Alert]:
        """The oldest open delivery of a webhook whose breaker wants a probe, due or not (a whole
        digest if it belongs to one, so a digest is never split under one Idempotency-Key)."""
        first = (
            await self.session.execute(
                select(Alert.id, Alert.digest_id)
                .where(_claimable(now), Alert.webhook_id == webhook_id)
                .order_by(Alert.next_attempt_at, Alert.id)
                .limit(1)
            )
        ).first()
        if first is None:
            return []
        stmt = select(Alert.id).where(_claimable(now), Alert.webhook_id == webhook_id)
        stmt = stmt.where(Alert.digest_id == first.digest_id if first.digest_id else Alert.id == first.id)
        return await self._lease(stmt, owner, now, lease_until)

    async def _lease(
        self, candidates: Select[Any], owner: str, now: datetime, lease_until: datetime
    ) -> list[Alert]:
        ids = list((await self.session.execute(candidates.with_for_update(skip_locked=True))).scalars())
        if not ids:
            return []
        return await self._take(Alert.id.in_(ids), owner, now, lease_until)

    async def _take(self, which: Any, owner: str, now: datetime, lease_until: datetime) -> list[Alert]:
        """Lease the rows `which` selects that are still claimable (the guard re-checked under lock)."""
        stmt = (
            update(Alert)
            .where(which, _claimable(now))
            .values(claimed_until=lease_until, claimed_by=owner)
            .returning(Alert)
        )
        result = await self.session.execute(
            stmt, execution_options={"synchronize_session": False, "populate_existing": True}
        )
        rows = list(result.scalars())
        await self._stamp_digests(rows)
        return rows

    async def _stamp_digests(self, rows: list[Alert]) -> None:
        fresh: dict[int, list[Alert]] = {}
        for row in rows:
            if row.priority == AlertPriority.digest and not row.digest_id:
                fresh.setdefault(row.webhook_id, []).append(row)
        for group in fresh.values():
            digest_id = new_digest_id()
            for row in group:
                row.digest_id = digest_id
        if fresh:
            await self.session.flush()

    async def finish(self, ids: Sequence[str], **values: Any) -> None:
        """Record an outcome and release the lease (attempts added, not set: rows of a digest share it)."""
        attempts = values.pop("add_attempts", 0)
        await self.session.execute(
            update(Alert)
            .where(Alert.id.in_(list(ids)))
            .values(claimed_until=None, claimed_by=None, attempts=Alert.attempts + attempts, **values)
            .execution_options(synchronize_session=False)
        )

    async def pull_forward(self, webhook_id: int, now: datetime) -> None:
        """A receiver came back: what waits in backoff for it is due now."""
        await self.session.execute(
            update(Alert)
            .where(
                Alert.webhook_id == webhook_id,
                Alert.status == AlertStatus.retrying,
                Alert.next_attempt_at > now,
            )
            .values(next_attempt_at=now)
            .execution_options(synchronize_session=False)
        )

    async def release(self, owner: str | None = None) -> int:
        """Drop leases: this owner's (clean stop) or all of them (SQLite start: one process only)."""
        stmt = update(Alert).where(Alert.claimed_until.is_not(None), Alert.status.in_(OPEN_STATUSES))
        if owner is not None:
            stmt = stmt.where(Alert.claimed_by == owner)
        result = await self.session.execute(
            stmt.values(claimed_until=None, claimed_by=None).execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def next_due(self, now: datetime, exclude_webhooks: Sequence[int] = ()) -> datetime | None:
        """When the next row becomes claimable (its due time, or its lease's end), for the sleep."""
        ready = case(
            (
                and_(Alert.claimed_until.is_not(None), Alert.claimed_until > Alert.next_attempt_at),
                Alert.claimed_until,
            ),
            else_=Alert.next_attempt_at,
        )
        stmt = select(func.min(ready, type_=UTCDateTime())).where(Alert.status.in_(OPEN_STATUSES))
        if exclude_webhooks:
            stmt = stmt.where(Alert.webhook_id.not_in(list(exclude_webhooks)))
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def retry_dead(self, alert: Alert, now: datetime, expires_at: datetime) -> Alert:
        alert.status = AlertStatus.pending
        alert.next_attempt_at = now
        alert.expires_at = expires_at
        alert.digest_id = None  # a retried digest row goes out in a new digest
        alert.claimed_until = None
        alert.claimed_by = None
        await self.session.flush()
        return alert

    def filtered(
        self,
        status: str | None = None,
        webhook_id: int | None = None,
        camera_id: int | None = None,
        since: datetime | None = None,
    ) -> Select[Any]:
        stmt = select(Alert)
        if status:
            stmt = stmt.where(Alert.status == status)
        if webhook_id is not None:
            stmt = stmt.where(Alert.webhook_id == webhook_id)
        if camera_id is not None:
            stmt = stmt.where(Alert.camera_id == camera_id)
        if since is not None:
            stmt = stmt.where(Alert.created_at >= since)
        return stmt
