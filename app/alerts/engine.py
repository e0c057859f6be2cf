"""AlertEngine: a bus subscriber that turns events into outbox rows as they are produced.

rules -> (rule, event) seen before? -> dedup -> one row per webhook, committed, then the dispatcher is
woken. Events are taken from the engine's own queue in small batches (one transaction per batch), so
an idle engine writes one event at once and a storm costs one commit per batch, not per event.

Nothing accepted is dropped silently. A database that is unavailable (`is_transient`) is retried with
backoff, reads and writes alike, until it answers; a batch leaves the queue only once it is handled.
Rows the database rejects for their content are never retried blindly: rows whose webhook was deleted
meanwhile are dropped (logged, counted), any other rejected row goes to `alerts-rejected-*.jsonl` under
the spill folder. Events still unhandled at shutdown go to `alert-pending-*.jsonl`, replayed at start.

One bounded queue between the bus and the engine: the engine is a direct bus subscriber (`offer`, never
blocking the publisher). When its queue is full the events wait in an overflow batch, written to
`alert-overflow-*.jsonl` every MAX_BATCH, and are considered as soon as the queue has drained: memory
stays bounded in a storm and nothing is lost.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Self, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.alerts.dedup import Deduplicator, DedupWindows
from app.alerts.digest import next_boundary
from app.alerts.outbox import OutboxRepository, write_lock
from app.alerts.repository import AlertRuleRepository, WebhookRepository
from app.alerts.rules import RuleSpec, is_immediate, matches
from app.alerts.spill import OVERFLOW, AlertSpill
from app.cameras.repository import CameraRepository
from app.config import AlertSettings
from app.events.repository import EventRepository
from app.events.types import NewEvent, Phase
from app.kit.redact import mask_url
from app.kit.retry import retry
from app.kit.tasks import cancel_and_wait, spawn
from app.metrics import ALERTS, ALERTS_DROPPED, ALERTS_SUPPRESSED
from app.models import AlertPriority, AlertStatus, utcnow

log = logging.getLogger("argus.alerts")
MAX_BATCH = 256
SEEN_MAX = 50_000
T = TypeVar("T")


@dataclass
class Plan:
    """What one batch decided: new rows to insert and suppressed hits to add to kept alerts."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    suppressed: dict[str, int] = field(default_factory=dict)
    events: dict[str, NewEvent] = field(default_factory=dict)  # the events the rows point at
    immediate: int = 0


class AlertEngine:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        digest_interval_s: float = 60.0,
        dead_after_s: float = 86_400.0,
        public_url: str = "",
        rules_ttl_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
        on_alert: Callable[[], None] | None = None,
        queue_size: int = 10_000,
        spill_dir: Path | None = None,
        retry_initial_s: float = 0.5,
        stop_timeout_s: float = 10.0,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._digest_interval_s = digest_interval_s
        self._dead_after = timedelta(seconds=dead_after_s)
        self._public_url = public_url.rstrip("/")
        self._rules_ttl_s = rules_ttl_s
        self._clock = clock
        self._now = now
        self.on_alert = on_alert
        # one alert per (rule, camera, type) per window; in a cluster the lifespan swaps in Redis windows
        self.dedup: DedupWindows = Deduplicator(clock=clock)
        self._queue: asyncio.Queue[NewEvent] = asyncio.Queue(queue_size)
        self._seen: OrderedDict[tuple[int, str], None] = OrderedDict()
        self._rules: list[RuleSpec] = []
        self._enabled_webhooks: set[int] = set()
        self._cameras: dict[int, tuple[str | None, str | None]] = {}  # id -> (name, url), with the rules
        self._rules_loaded_at: float | None = None
        self._task: asyncio.Task[Any] | None = None
        self.spill = AlertSpill(spill_dir)  # None: rejected rows are only logged (in full)
        self._retry_initial_s = retry_initial_s
        self._stop_timeout_s = stop_timeout_s
        self._inflight: list[NewEvent] = []  # the batch being handled: spilled if stopped mid-way
        self._overflow: list[NewEvent] = []  # offered while the queue was full (MAX_BATCH at most)
        self._overflow_files = False  # alert-overflow files written by this run, not yet replayed
        self._overflow_busy = False  # the overflow is being handled
        self._stopped = False
        self._decisions: dict[str, asyncio.Future[None]] = {}  # event id -> decide() waiting on it
        self._replayed = asyncio.Event()
        self.created = 0
        self.suppressed = 0
        self.retries = 0  # transient database errors retried
        self.dropped = 0  # rows whose webhook was deleted before they were written
        self.write_error: str | None = None  # while the database is being retried (health: degraded)

    @classmethod
    def from_settings(
        cls, sessionmaker: async_sessionmaker[AsyncSession], alerts: AlertSettings, **kw: Any
    ) -> Self:
        return cls(
            sessionmaker,
            digest_interval_s=alerts.digest_interval_s,
            dead_after_s=alerts.webhook_dead_after_s,
            public_url=alerts.public_url,
            spill_dir=alerts.spill_dir,
            **kw,
        )

    async def __aenter__(self) -> Self:
        self._task = spawn(self._run(), name="argus.alerts.engine")
        log.info("alert engine started")
        return self

    async def __aexit__(self, *_: object) -> None:
        try:
            await self.idle(self._stop_timeout_s)
        except TimeoutError:
            log.error("alert engine did not drain in time (database unavailable?); spilling what it holds")
        await cancel_and_wait(self._task)
        self._stopped = True  # offer() keeps what still comes for the next start
        left = self._inflight + self._overflow
        self._overflow = []
        while not self._queue.empty():
            left.append(self._queue.get_nowait())
            self._queue.task_done()
        if left:
            self.spill.keep_pending(left)
        self._decided(list(self._decisions))  # what is left is in the pending file, replayed at start
        log.info("alert engine stopped: %s", self.stats())

    def stats(self) -> dict[str, int]:
        return {
            "queued": self._queue.qsize() + len(self._overflow),
            "created": self.created,
            "suppressed": self.suppressed,
            "retries": self.retries,
            "dropped": self.dropped,
            "rejected": self.spill.rejected,
            "spilled": self.spill.spilled,
            "overflowed": self.spill.overflowed,
            "replayed": self.spill.replayed,
        }

    def offer(self, event: NewEvent) -> None:
        """Direct bus handler: never blocks. A full queue sends the event (and every later one until
        the queue has drained, so their order holds) to the overflow; stopped: to the pending file."""
        if self._stopped:
            self.spill.keep_pending([event])
            return
        if not (self._overflow or self._overflow_files):
            try:
                self._queue.put_nowait(event)
                return
            except asyncio.QueueFull:
                log.warning("alert queue full (%d); later events wait in the overflow", self._queue.qsize())
        self._overflow.append(event)
        if len(self._overflow) >= MAX_BATCH:
            held, self._overflow = self._overflow, []
            self._overflow_files |= self.spill.keep_overflow(held)

    async def consider(self, event: NewEvent) -> None:
        """Hand in one event, waiting while the queue is full (callers that can wait: tests, tools)."""
        await self._queue.put(event)

    async def decide(self, events: Sequence[NewEvent]) -> None:
        """Consider `events` and return once their alerts are committed to the outbox (or set aside in
        a file): an ingest is answered only then, so a crash never loses the alert of an accepted event."""
        loop = asyncio.get_running_loop()
        waits = []
        for event in events:
            waits.append(self._decisions.setdefault(event.id, loop.create_future()))
            await self._queue.put(event)
        await asyncio.gather(*waits)

    def _decided(self, event_ids: list[str]) -> None:
        for event_id in event_ids:
            done = self._decisions.pop(event_id, None)
            if done is not None and not done.done():
                done.set_result(None)

    async def idle(self, timeout: float = 10.0) -> None:
        """Every event handed in so far is decided and committed (tests, shutdown)."""
        async with asyncio.timeout(timeout):
            await self._replayed.wait()
            await self._queue.join()
            while self._overflow or self._overflow_files or self._overflow_busy:
                await asyncio.sleep(0.01)  # rare (a storm): the loop takes it once the queue drained
                await self._queue.join()

    def invalidate(self) -> None:
        """Rules or webhooks changed through the API: reload before the next event."""
        self._rules_loaded_at = None

    async def _run(self) -> None:
        try:
            await self.spill.replay(self._handle_or_reject, MAX_BATCH)
        finally:
            self._replayed.set()
        while True:
            if self._queue.empty() and (self._overflow or self._overflow_files):
                await self._drain_overflow()
                continue
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._inflight = batch
            try:
                await self._handle_or_reject(batch)
                self._inflight = []  # not when cancelled: __aexit__ spills it
                self._decided([e.id for e in batch])
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _drain_overflow(self) -> None:
        """The queue has drained: the events that found it full, oldest first (files, then memory)."""
        self._overflow_busy = True
        try:
            if self._overflow_files:
                self._overflow_files = False  # set again by a write meanwhile
                await self.spill.replay(self._handle_or_reject, MAX_BATCH, (OVERFLOW,))
            held, self._overflow = self._overflow, []
            if held:
                self._inflight = held
                await self._handle_or_reject(held)
                self._inflight = []  # not when cancelled: __aexit__ spills it
        finally:
            self._overflow_busy = False

    async def _handle_or_reject(self, batch: list[NewEvent]) -> None:
        """Transient errors are retried inside; whatever still fails keeps the events in a file."""
        try:
            await self._handle(batch)
        except Exception as exc:
            log.exception("alert engine failed on a batch of %d events", len(batch))
            self.spill.reject("alert-events-rejected", [{**e.to_json(), "error": _err(exc)} for e in batch])
            ALERTS_DROPPED.labels(reason="event_rejected").inc(len(batch))

    async def _retrying(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        """`op()` until it succeeds or fails for a reason other than the database being unavailable."""

        def failed(exc: BaseException, _: int) -> None:
            self.write_error = f"{what}: {_err(exc)}"
            self.retries += 1
            log.error("alert engine: %s failed (%s); retrying with backoff", what, _err(exc))

        result = await retry(op, initial=self._retry_initial_s, cap=10.0, jitter=0.2, on_error=failed)
        self.write_error = None
        return result

    async def _handle(self, batch: list[NewEvent]) -> None:
        # Reads are retried before planning: planning marks events seen and opens dedup windows, so a
        # batch must be planned once, then its plan written (retried) as it is.
        cameras = await self._retrying("reading rules", lambda: self._read(batch))
        if cameras is None:
            return
        plan = await self._plan(batch, cameras)
        if plan.rows or plan.suppressed:
            await self._write(plan)
        if plan.rows and self.on_alert is not None:
            self.on_alert()

    async def _read(self, batch: list[NewEvent]) -> dict[int, tuple[str | None, str | None]] | None:
        """Rules and cameras (cached together for `rules_ttl_s`) and the alerted pairs of the batch's
        updates; None when there are no rules. A batch of new events with known cameras reads nothing."""
        later = [e.id for e in batch if e.phase is not Phase.open]
        wanted = {e.camera_id for e in batch if e.camera_id is not None}
        if self._rules_fresh() and not later and wanted <= self._cameras.keys():
            return self._cameras if self._rules else None
        async with self._sessionmaker() as session:
            if not self._rules_fresh():
                await self._refresh_rules(session)
            if not self._rules:
                return None
            repo = OutboxRepository(session)
            for rule_id, event_id in await repo.alerted_pairs(later):
                self._remember(rule_id, event_id)
            missing = wanted - self._cameras.keys()
            if missing:
                found = await CameraRepository(session).names_and_urls(missing)
                self._cameras.update({i: found.get(i, (None, None)) for i in missing})
            return self._cameras

    def _rules_fresh(self) -> bool:
        loaded = self._rules_loaded_at
        return loaded is not None and self._clock() - loaded < self._rules_ttl_s

    async def _refresh_rules(self, session: AsyncSession) -> None:
        rows = await AlertRuleRepository(session).list_enabled()
        self._rules = [RuleSpec.from_row(r) for r in rows]
        self._enabled_webhooks = await WebhookRepository(session).enabled_ids()
        self._cameras = {}  # names and URLs are re-read with the rules: a rename shows within the TTL
        self._rules_loaded_at = self._clock()

    async def _plan(self, batch: list[NewEvent], cameras: dict[int, tuple[str | None, str | None]]) -> Plan:
        plan = Plan()
        now = self._now()
        for event in batch:
            for rule in self._rules:
                if not matches(rule, event) or (rule.id, event.id) in self._seen:
                    continue
                self._remember(rule.id, event.id)
                rows = [
                    self._row(rule, event, hook_id, cameras, now)
                    for hook_id in rule.webhook_ids
                    if hook_id in self._enabled_webhooks
                ]
                key = (rule.id, event.camera_id, event.type)
                kept = await self.dedup.admit(key, rule.dedup_window_s, [r["id"] for r in rows])
                if kept is not None:  # an open window swallows it: its alerts count one more hit
                    for alert_id in kept:
                        plan.suppressed[alert_id] = plan.suppressed.get(alert_id, 0) + 1
                    self.suppressed += 1
                    ALERTS_SUPPRESSED.inc()
                    continue
                plan.rows.extend(rows)
                if rows:
                    plan.events[event.id] = event
                priority = rows[0]["priority"] if rows else None
                if priority is not None:
                    ALERTS.labels(priority=priority).inc(len(rows))
                    self.created += len(rows)
                    plan.immediate += priority == AlertPriority.immediate
        return plan

    def _row(
        self,
        rule: RuleSpec,
        event: NewEvent,
        webhook_id: int,
        cameras: dict[int, tuple[str | None, str | None]],
        now: datetime,
    ) -> dict[str, Any]:
        alert_id = uuid.uuid4().hex
        immediate = is_immediate(event.severity)
        priority = AlertPriority.immediate if immediate else AlertPriority.digest
        return {
            "id": alert_id,
            "rule_id": rule.id,
            "webhook_id": webhook_id,
            "event_id": event.id,
            "camera_id": event.camera_id,
            "event_type": event.type,
            "severity": str(event.severity),
            "priority": str(priority),
            "payload": self._payload(alert_id, rule, event, cameras, now, priority),
            "suppressed_count": 0,
            "status": AlertStatus.pending,
            "attempts": 0,
            "next_attempt_at": now if immediate else next_boundary(now, self._digest_interval_s),
            "expires_at": now + self._dead_after,
            "created_at": now,
            "updated_at": now,
        }

    def _payload(
        self,
        alert_id: str,
        rule: RuleSpec,
        event: NewEvent,
        cameras: dict[int, tuple[str | None, str | None]],
        now: datetime,
        priority: AlertPriority,
    ) -> dict[str, Any]:
        camera: dict[str, Any] | None = None
        if event.camera_id is not None:
            name, url = cameras.get(event.camera_id, (None, None))
            camera = {"id": event.camera_id, "name": name, "url": mask_url(url) if url else None}
        return {
            "type": "alert",
            "id": alert_id,
            "created_at": now.isoformat(),
            "priority": str(priority),
            "rule": {"id": rule.id, "name": rule.name},
            "camera": camera,
            "event": {
                "id": event.id,
                "type": event.type,
                "severity": str(event.severity),
                "score": event.score,
                "started_at": event.started_at.isoformat(),
                "description": event.description,
                "snapshot_url": f"{self._public_url}/api/events/{event.id}/snapshot.jpg",
            },
        }

    async def _write(self, plan: Plan) -> None:
        """Commit the plan. A database that is down is retried, never skipped (alerts are not lost);
        a plan it rejects is written again without the rows whose webhook is gone, row by row, and the
        rows still rejected go to a file: one bad row never wedges the engine."""
        try:
            await self._retrying(
                "outbox write", lambda: self._commit(plan.rows, plan.suppressed, plan.events)
            )
            return
        except Exception as exc:
            log.error(
                "alert outbox write of %d rows rejected (%s); writing row by row", len(plan.rows), _err(exc)
            )
        rows = await self._without_deleted_webhooks(plan.rows)
        if plan.suppressed:
            try:
                await self._retrying("suppressed counts", lambda: self._commit([], plan.suppressed))
            except Exception:  # counts only: the alerts themselves are already in the outbox
                log.exception("suppressed counts not written: %s", plan.suppressed)
        bad: list[dict[str, Any]] = []
        for row in rows:
            try:
                await self._retrying("outbox write", functools.partial(self._commit, [row], {}, plan.events))
            except Exception as exc:
                bad.append({**row, "error": _err(exc)})
        if bad:
            self.spill.reject("alerts-rejected", bad)
            ALERTS_DROPPED.labels(reason="rejected").inc(len(bad))
        written = {r["id"] for r in rows} - {r["id"] for r in bad}
        await self.dedup.release({r["id"] for r in plan.rows} - written)

    async def _commit(
        self,
        rows: list[dict[str, Any]],
        suppressed: dict[str, int],
        events: dict[str, NewEvent] | None = None,
    ) -> None:
        async with write_lock(self._sessionmaker), self._sessionmaker.begin() as session:
            repo = OutboxRepository(session)
            if rows:
                # An alert never points at an event that is not stored: a camera event may still sit in
                # the logger's buffer (lost on a hard crash), so its row is written here if absent.
                wanted = {r["event_id"] for r in rows}
                found = [e.to_row() for i, e in (events or {}).items() if i in wanted]
                await EventRepository(session).insert_missing(found)
                await repo.add_many(rows)
            if suppressed:
                await repo.add_suppressed(suppressed)

    async def _without_deleted_webhooks(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Drop (log, count) rows whose webhook was deleted after the rules were cached; rules are
        reloaded before the next batch. A deleted rule needs nothing: `rule_id` outlives its rule."""

        async def existing() -> set[int]:
            async with self._sessionmaker() as session:
                ids = {r["webhook_id"] for r in rows}
                return await WebhookRepository(session).existing_ids(ids)

        if not rows:
            return rows
        alive = await self._retrying("reading webhooks", existing)
        gone = [r for r in rows if r["webhook_id"] not in alive]
        if gone:
            self.invalidate()
            self.dropped += len(gone)
            ALERTS_DROPPED.labels(reason="webhook_deleted").inc(len(gone))
            for r in gone:
                log.error(
                    "alert %s dropped: webhook %s was deleted (rule %s, event %s, camera %s, %s)",
                    r["id"], r["webhook_id"], r["rule_id"], r["event_id"], r["camera_id"], r["event_type"],
                )  # fmt: skip
        return [r for r in rows if r["webhook_id"] in alive]

    def _remember(self, rule_id: int, event_id: str) -> None:
        self._seen[(rule_id, event_id)] = None
        if len(self._seen) > SEEN_MAX:
            self._seen.popitem(last=False)


def _err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]
