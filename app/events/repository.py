"""EventRepository: every events SQL statement (idempotent upsert on id, filtered cursor pages)."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ColumnElement, Select, and_, case, cast, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB

from app.kit.repository import RepositoryBase
from app.kit.severity import Severity
from app.metrics import EVENTS_FENCED
from app.models import CameraLease, Event, utcnow

log = logging.getLogger("argus.events")

# Columns a later version simply replaces; created_at and id stay as first written.
_REPLACED = ("camera_id", "type", "score", "started_at", "source", "updated_at", "fence")
# Set once, never unset: a version evolved from an older copy (a VLM description of the open event
# arriving after the close) must not reopen the event or drop its snapshot.
_STICKY = ("ended_at", "description", "snapshot_path")


ChangeKey = tuple[datetime, datetime, str]  # (updated_at, started_at, id): the order of changes


def change_key(row: Event) -> ChangeKey:
    return (row.updated_at, row.started_at, row.id)


@dataclass(frozen=True, slots=True)
class EventFilter:
    camera_id: int | None = None
    type: str | None = None
    severity: Severity | None = None  # exact match
    min_severity: Severity | None = None  # this severity or worse
    since: datetime | None = None  # started_at >= since
    until: datetime | None = None  # started_at < until


class EventRepository(RepositoryBase[Event]):
    model = Event

    async def upsert_many(self, rows: Sequence[dict[str, Any]]) -> int:
        """Insert-or-update on id in one executemany; rows must hold distinct ids (PostgreSQL refuses
        to touch one row twice in a statement), which the logger guarantees by collapsing versions.
        Rows with a stale fencing token are left out (see _fenced); the count is of rows written."""
        rows = await self._fenced(rows)
        if not rows:
            return 0
        now = utcnow()
        params = [{**row, "created_at": now, "updated_at": now} for row in rows]
        dialect = self.session.get_bind().dialect.name
        stmt = _insert_for(dialect)(Event)
        new, old = stmt.excluded, Event.__table__.c
        set_: dict[str, Any] = {c: new[c] for c in _REPLACED}
        set_.update({c: func.coalesce(new[c], old[c]) for c in _STICKY})
        set_["data"] = _merged_json(dialect, old.data, new.data)
        # severity only rises (a VLM verdict or a worse phase), whatever order versions arrive in
        set_["severity"] = case(
            (_rank(new.severity) >= _rank(old.severity), new.severity), else_=old.severity
        )
        stmt = stmt.on_conflict_do_update(index_elements=[Event.id], set_=set_)
        await self.session.execute(stmt, params)
        return len(params)

    async def _fenced(self, rows: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]]:
        """Cluster mode: leave out rows whose camera lease has moved on since their pipeline wrote them
        (a former owner's late writes). FOR SHARE holds the lease rows until this transaction ends, so no
        node can acquire one of these cameras between the check and the write. Unfenced rows pass.
        (The events a former owner left open were closed by the node that acquired the camera:
        app.cluster.repository.close_former_events.)"""
        fenced = {r["camera_id"] for r in rows if r.get("fence") is not None}
        if not fenced:
            return rows
        tokens = await self.lease_tokens(fenced)
        kept = [r for r in rows if r.get("fence") is None or tokens.get(r["camera_id"]) == r["fence"]]
        if len(kept) < len(rows):
            stale = [r for r in rows if r not in kept]
            EVENTS_FENCED.inc(len(stale))
            log.warning(
                "%d event write(s) refused: stale camera lease token (cameras %s: a former owner)",
                len(stale),
                sorted({r["camera_id"] for r in stale}),
            )
        return kept

    async def lease_tokens(self, camera_ids: Collection[int]) -> dict[int, int]:
        """The cameras' current lease tokens, their rows held FOR SHARE until this transaction ends (no
        node acquires one of them between a write's check and its commit)."""
        found = await self.session.execute(
            select(CameraLease.camera_id, CameraLease.token)
            .where(CameraLease.camera_id.in_(sorted(camera_ids)))
            .order_by(CameraLease.camera_id)  # the order renew locks them in: no deadlock between the two
            .with_for_update(read=True)
        )
        return {cid: token for cid, token in found.all()}

    async def insert_missing(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert the rows whose id is not stored yet; a stored row is left as it is (the logger's
        upsert owns its later versions)."""
        if not rows:
            return
        now = utcnow()
        params = [{**row, "created_at": now, "updated_at": now} for row in rows]
        stmt = _insert_for(self.session.get_bind().dialect.name)(Event).on_conflict_do_nothing(
            index_elements=[Event.id]
        )
        await self.session.execute(stmt, params)

    async def search(
        self, flt: EventFilter, cursor: str | None, limit: int
    ) -> tuple[Sequence[Event], str | None]:
        """Newest first; raises kit.repository.InvalidCursor for a cursor it did not produce."""
        return await self.page(_filtered(select(Event), flt), Event.started_at, Event.id, cursor, limit)

    async def changed_since(
        self, flt: EventFilter, since: datetime, after: ChangeKey | None, limit: int
    ) -> Sequence[Event]:
        """Events stored or changed at or after `since`, oldest change first (the event stream's resume,
        edge forwarding); `after` is the change_key() of the previous page's last row. Rows written in
        one flush share updated_at: they follow in started_at order, so a camera's events keep theirs."""
        stmt = _filtered(select(Event), flt).where(Event.updated_at >= since)
        if after is not None:
            at, started, row_id = after
            stmt = stmt.where(
                or_(
                    Event.updated_at > at,
                    and_(Event.updated_at == at, Event.started_at > started),
                    and_(Event.updated_at == at, Event.started_at == started, Event.id > row_id),
                )
            )
        stmt = stmt.order_by(Event.updated_at, Event.started_at, Event.id).limit(limit)
        return (await self.session.execute(stmt)).scalars().all()

    async def count_changed_since(self, since: datetime) -> int:
        found = await self.session.execute(
            select(func.count()).select_from(Event).where(Event.updated_at > since)
        )
        return int(found.scalar_one())

    async def existing_ids(self, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        found = await self.session.execute(select(Event.id).where(Event.id.in_(ids)))
        return set(found.scalars())

    async def set_clip(self, event_id: str, path: str | None, parts: int) -> bool:
        """Set the event's clip (first part's path and part count); False when it has no row (yet)."""
        stmt = update(Event).where(Event.id == event_id).values(clip_path=path, clip_parts=parts)
        result = await self.session.execute(stmt)
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def clips_of(self, event_ids: Sequence[str]) -> dict[str, tuple[str | None, int]]:
        stmt = select(Event.id, Event.clip_path, Event.clip_parts).where(Event.id.in_(event_ids))
        return {row.id: (row.clip_path, row.clip_parts or 0) for row in await self.session.execute(stmt)}

    async def linked_clips(self) -> dict[str, tuple[str | None, int]]:
        """Every event that names a clip: id -> (path, parts)."""
        stmt = select(Event.id, Event.clip_path, Event.clip_parts).where(Event.clip_path.is_not(None))
        return {row.id: (row.clip_path, row.clip_parts or 0) for row in await self.session.execute(stmt)}

    async def forget_camera_clips(self, camera_id: int) -> None:
        stmt = (
            update(Event)
            .where(Event.camera_id == camera_id, Event.clip_path.is_not(None))
            .values(clip_path=None, clip_parts=0)
        )
        await self.session.execute(stmt)

    async def forget_clips(self, event_ids: Sequence[str]) -> None:
        """The events lose their clip (its files were deleted)."""
        stmt = update(Event).where(Event.id.in_(event_ids)).values(clip_path=None, clip_parts=0)
        await self.session.execute(stmt)

    async def forget_snapshots(self, paths: Sequence[str]) -> None:
        """The events holding these snapshot paths lose them (the files were deleted)."""
        stmt = update(Event).where(Event.snapshot_path.in_(paths)).values(snapshot_path=None)
        await self.session.execute(stmt)


def _filtered(stmt: Select[Any], flt: EventFilter) -> Select[Any]:
    if flt.camera_id is not None:
        stmt = stmt.where(Event.camera_id == flt.camera_id)
    if flt.type:
        stmt = stmt.where(Event.type == flt.type)
    if flt.severity is not None:
        stmt = stmt.where(Event.severity == str(flt.severity))
    if flt.min_severity is not None:
        worse = [str(s) for s in Severity if s.at_least(flt.min_severity)]
        stmt = stmt.where(Event.severity.in_(worse))
    if flt.since is not None:
        stmt = stmt.where(Event.started_at >= flt.since)
    if flt.until is not None:
        stmt = stmt.where(Event.started_at < flt.until)
    return stmt


def _insert_for(dialect: str) -> Any:
    if dialect == "postgresql":
        return postgresql.insert
    if dialect == "sqlite":
        return sqlite.insert
    raise RuntimeError(f"unsupported database dialect {dialect}")  # pragma: no cover


def _merged_json(dialect: str, old: Any, new: Any) -> ColumnElement[Any]:
    """Top-level keys of both, the new value winning (a VLM verdict survives later episode updates)."""
    if dialect == "sqlite":
        return func.json_patch(old, new)
    return cast(cast(old, JSONB).op("||")(cast(new, JSONB)), JSON)


def _rank(col: Any) -> ColumnElement[int]:
    return case({str(s): s.rank for s in Severity}, value=col, else_=-1)
