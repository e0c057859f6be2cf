"""AlertEngine: a bus subscriber that turns events into outbox rows as they are produced.

rules -> (rule, event) seen before? -> dedup -> one row per webhook, committed, then the dispatcher is
woken. Events are taken from the engine's own queue in small batches (one transaction per batch), so
an idle engine writes one event at once and a storm costs one commit per batch, not per event.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Self

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.alerts.dedup import Deduplicator
from app.alerts.digest import next_boundary
from app.alerts.outbox import OutboxRepository, write_lock
from app.alerts.rules import RuleSpec, is_immediate, matches
from app.config import Settings
from app.events.types import NewEvent, Phase
from app.kit.backoff import Backoff
from app.kit.redact import mask_url
from app.kit.tasks import cancel_and_wait, spawn
from app.metrics import ALERTS, ALERTS_SUPPRESSED
from app.models import AlertPriority, AlertRule, AlertStatus, Webhook, utcnow

log = logging.getLogger("argus.alerts")
MAX_BATCH = 256
SEEN_MAX = 50_000


@dataclass
class Plan:
    """What one batch decided: new rows to insert and suppressed hits to add to kept alerts."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    suppressed: dict[str, int] = field(default_factory=dict)
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
        drain_upstream: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._digest_interval_s = digest_interval_s
        self._dead_after = timedelta(seconds=dead_after_s)
        self._public_url = public_url.rstrip("/")
        self._rules_ttl_s = rules_ttl_s
        self._clock = clock
        self._now = now
        self.on_alert = on_alert
        self._drain_upstream = drain_upstream  # the bus's drain: take what it still holds before stopping
        self.dedup = Deduplicator(clock=clock)
        self._queue: asyncio.Queue[NewEvent] = asyncio.Queue(queue_size)
        self._seen: OrderedDict[tuple[int, str], None] = OrderedDict()
        self._rules: list[RuleSpec] = []
        self._enabled_webhooks: set[int] = set()
        self._rules_loaded_at: float | None = None
        self._task: asyncio.Task[Any] | None = None
        self.created = 0
        self.suppressed = 0

    @classmethod
    def from_settings(
        cls, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, **kw: Any
    ) -> Self:
        return cls(
            sessionmaker,
            digest_interval_s=settings.digest_interval_s,
            dead_after_s=settings.webhook_dead_after_s,
            public_url=settings.public_url,
            **kw,
        )

    async def __aenter__(self) -> Self:
        self._task = spawn(self._run(), name="argus.alerts.engine")
        log.info("alert engine started")
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._drain_upstream is not None:
            try:
                await self._drain_upstream()
            except Exception:
                log.exception("draining the bus before stopping the alert engine failed")
        try:
            await asyncio.wait_for(self._queue.join(), 10.0)
        except TimeoutError:
            log.error("alert engine stopped with %d events not considered", self._queue.qsize())
        await cancel_and_wait(self._task)
        log.info("alert engine stopped")

    async def consider(self, event: NewEvent) -> None:
        """Bus handler. Waits when the engine's queue is full, so back-pressure lands on the bus queue."""
        await self._queue.put(event)

    async def idle(self, timeout: float = 10.0) -> None:
        """Every event handed in so far is decided and committed (tests, shutdown)."""
        await asyncio.wait_for(self._queue.join(), timeout)

    def invalidate(self) -> None:
        """Rules or webhooks changed through the API: reload before the next event."""
        self._rules_loaded_at = None

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._handle(batch)
            except Exception:
                log.exception("alert engine failed on a batch of %d events", len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _handle(self, batch: list[NewEvent]) -> None:
        async with self._sessionmaker() as session:
            await self._refresh_rules(session)
            if not self._rules:
                return
            repo = OutboxRepository(session)
            later = [e.id for e in batch if e.phase is not Phase.open]
            for rule_id, event_id in await repo.alerted_pairs(later):
                self._remember(rule_id, event_id)
            cameras = await repo.cameras(e.camera_id for e in batch if e.camera_id is not None)
        plan = self._plan(batch, cameras)
        if plan.rows or plan.suppressed:
            await self._write(plan)
        if plan.rows and self.on_alert is not None:
            self.on_alert()

    async def _refresh_rules(self, session: AsyncSession) -> None:
        now = self._clock()
        if self._rules_loaded_at is not None and now - self._rules_loaded_at < self._rules_ttl_s:
            return
        rows = (await session.execute(select(AlertRule).where(AlertRule.enabled))).scalars().all()
        hooks = (await session.execute(select(Webhook.id).where(Webhook.enabled))).scalars().all()
        self._rules = [RuleSpec.from_row(r) for r in rows]
        self._enabled_webhooks = set(hooks)
        self._rules_loaded_at = now

    def _plan(self, batch: list[NewEvent], cameras: dict[int, tuple[str, str]]) -> Plan:
        plan = Plan()
        now = self._now()
        for event in batch:
            for rule in self._rules:
                if not matches(rule, event) or (rule.id, event.id) in self._seen:
                    continue
                self._remember(rule.id, event.id)
                key = (rule.id, event.camera_id, event.type)
                window = self.dedup.suppresses(key, rule.dedup_window_s)
                if window is not None:
                    for alert_id in window.alert_ids:
                        plan.suppressed[alert_id] = plan.suppressed.get(alert_id, 0) + 1
                    self.suppressed += 1
                    ALERTS_SUPPRESSED.inc()
                    continue
                rows = [
                    self._row(rule, event, hook_id, cameras, now)
                    for hook_id in rule.webhook_ids
                    if hook_id in self._enabled_webhooks
                ]
                self.dedup.open(key, [r["id"] for r in rows])
                plan.rows.extend(rows)
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
        cameras: dict[int, tuple[str, str]],
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
        cameras: dict[int, tuple[str, str]],
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
        """Commit the plan; a database that is down is retried, never skipped (alerts are not lost)."""
        backoff = Backoff(initial=0.5, cap=10.0, jitter=0.2)
        while True:
            try:
                async with write_lock(self._sessionmaker), self._sessionmaker.begin() as session:
                    repo = OutboxRepository(session)
                    if plan.rows:
                        await repo.add_many(plan.rows)
                    if plan.suppressed:
                        await repo.add_suppressed(plan.suppressed)
                return
            except Exception:
                delay = backoff.next_delay()
                log.exception("alert outbox write failed (%d rows); retrying in %.1fs", len(plan.rows), delay)
                await asyncio.sleep(delay)

    def _remember(self, rule_id: int, event_id: str) -> None:
        self._seen[(rule_id, event_id)] = None
        if len(self._seen) > SEEN_MAX:
            self._seen.popitem(last=False)
