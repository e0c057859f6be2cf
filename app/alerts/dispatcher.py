"""WebhookDispatcher: claims due outbox rows, POSTs them, records the outcome in the row.

The loop sleeps until it is woken (a new alert, a free slot) or the next row falls due, so a high
alert goes out as soon as its row is committed. All backoff state lives in the rows (attempts,
next_attempt_at), so a restarted process resumes where the last one stopped; only the per-webhook
circuit breakers are in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Self

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.alerts.breaker import CircuitBreaker
from app.alerts.digest import digest_payload
from app.alerts.outbox import OutboxRepository, write_lock
from app.alerts.recorder import Finished, OutcomeRecorder
from app.alerts.repository import WebhookRepository
from app.alerts.sender import Outcome, Target, WebhookSender, describe
from app.config import AlertSettings
from app.kit.netguard import GuardedTransport
from app.kit.retry import any_error, retry
from app.kit.tasks import cancel_and_wait, spawn
from app.kit.urls import IPNetwork
from app.models import Alert, AlertPriority, utcnow

log = logging.getLogger("argus.alerts.dispatcher")
DIGEST_GATE_TIMEOUT_S = 3.0  # a gate that does not answer (a hung Redis) lets this node send digests


@dataclass(frozen=True)
class DispatchPolicy:
    attempts: int = 3  # HTTP attempts per claim
    retry_initial_s: float = 0.5  # in-process waits (tenacity, jittered)
    retry_max_s: float = 5.0
    backoff_initial_s: float = 5.0  # between claims of a failing row, doubling up to max_backoff_s
    max_backoff_s: float = 600.0
    lease_s: float = 120.0
    concurrency: int = 32
    breaker_threshold: int = 5
    breaker_reset_s: float = 10.0
    idle_poll_s: float = 5.0  # safety net for rows other processes insert (PostgreSQL)
    digest_max: int = 500  # alerts in one digest POST at most
    gather_s: float = 0.01  # after a wake-up, wait this long for more rows before claiming
    record_gather_s: float = 0.05  # outcomes written together (a crash before: re-sent, same key)
    targets_ttl_s: float = 5.0  # webhooks cached between claims (this process's edits invalidate)
    deny_networks: tuple[IPNetwork, ...] = ()  # never connected to, checked on the resolved address

    @classmethod
    def from_settings(cls, alerts: AlertSettings, **overrides: Any) -> Self:
        values: dict[str, Any] = {
            "attempts": alerts.webhook_attempts,
            "max_backoff_s": alerts.webhook_max_backoff_s,
            "lease_s": alerts.webhook_lease_s,
            "concurrency": alerts.webhook_concurrency,
            "breaker_threshold": alerts.webhook_breaker_threshold,
            "breaker_reset_s": alerts.webhook_breaker_reset_s,
            "deny_networks": alerts.webhook_denied_networks,
        }
        values.update(overrides)
        return cls(**values)


@dataclass
class Delivery:
    """One POST: a single alert row, or every row of one digest."""

    target: Target
    rows: list[Alert]
    key: str
    kind: str

    def payload(self, now: datetime) -> dict[str, Any]:
        alerts = [{**r.payload, "suppressed_count": r.suppressed_count} for r in self.rows]
        return alerts[0] if self.kind == "alert" else digest_payload(self.key, alerts, now)


class WebhookDispatcher:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        policy: DispatchPolicy | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessionmaker = sessionmaker
        self.policy = policy or DispatchPolicy()
        self._transport = transport
        self._now = now
        self.owner = uuid.uuid4().hex
        self.breakers: dict[int, CircuitBreaker] = {}
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._starved = False
        self._task: asyncio.Task[Any] | None = None
        self._client: httpx.AsyncClient | None = None
        self.sender: WebhookSender | None = None
        self.sent = 0  # deliveries this dispatcher made (POSTs, retries inside one counted once)
        self._recorder: OutcomeRecorder | None = None
        self._stack = contextlib.AsyncExitStack()  # what __aenter__ opened, closed in reverse by __aexit__
        self._target_cache: dict[int, Target] = {}
        self._targets_loaded_at: float | None = None
        self._next_due: datetime | None = None  # noted by the last claim round that went idle
        # cluster mode: asked before each claim whether this node sends the digests now (one node does)
        self.digest_gate: Callable[[], Awaitable[bool]] | None = None

    async def __aenter__(self) -> Self:
        async with contextlib.AsyncExitStack() as stack:
            await self._open(stack)
            self._stack = stack.pop_all()  # opened: kept until __aexit__; failed: closed by the with
        self._task = spawn(self._run(), name="argus.alerts.dispatcher")
        log.info("webhook dispatcher started (%s)", self.owner[:8])
        return self

    async def _open(self, stack: contextlib.AsyncExitStack) -> None:
        """Client, then the recorder; the exit stack closes them in reverse: the recorder writes the
        last outcomes and this process's claims are released before the client goes."""
        limits = httpx.Limits(max_connections=self.policy.concurrency * 2)
        self._client = await stack.enter_async_context(
            httpx.AsyncClient(
                # resolve, check against deny_networks, connect to the checked address (no DNS rebinding)
                transport=self._transport or GuardedTransport(self.policy.deny_networks, limits),
                limits=limits,
                follow_redirects=False,
            )
        )
        self.sender = WebhookSender(
            self._client,
            attempts=self.policy.attempts,
            retry_initial_s=self.policy.retry_initial_s,
            retry_max_s=self.policy.retry_max_s,
        )
        bind = self._sessionmaker.kw.get("bind")
        if bind is not None and bind.dialect.name == "sqlite":
            # One process owns a SQLite file: leases left by a killed predecessor are void now.
            async with write_lock(self._sessionmaker), self._sessionmaker.begin() as session:
                released = await OutboxRepository(session).release()
            if released:
                log.info("resuming %d deliveries claimed before a restart", released)
        stack.push_async_callback(self._release_claims)  # runs after the recorder has stopped
        self._recorder = await stack.enter_async_context(
            OutcomeRecorder(
                self._sessionmaker,
                attempts_per_claim=self.policy.attempts,
                backoff_initial_s=self.policy.backoff_initial_s,
                gather_s=self.policy.record_gather_s,
                max_backoff_s=self.policy.max_backoff_s,
                now=self._now,
                on_recovered=self.wake,
            )
        )

    async def __aexit__(self, *_: object) -> None:
        await cancel_and_wait(self._task)
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=2.0)
        for task in list(self._in_flight):
            await cancel_and_wait(task)
        await self._stack.aclose()  # recorder (last outcomes), claims released, client
        log.info("webhook dispatcher stopped")

    async def _release_claims(self) -> None:
        try:
            async with write_lock(self._sessionmaker), self._sessionmaker.begin() as session:
                await OutboxRepository(session).release(self.owner)
        except Exception:
            log.exception("could not release claimed deliveries (their leases will expire)")

    def wake(self) -> None:
        """New rows were committed: claim now instead of at the next due time."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def breaker(self, webhook_id: int) -> CircuitBreaker:
        breaker = self.breakers.get(webhook_id)
        if breaker is None:
            breaker = CircuitBreaker(
                self.policy.breaker_threshold, self.policy.breaker_reset_s, self.policy.max_backoff_s
            )
            self.breakers[webhook_id] = breaker
        return breaker

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            more = await retry(
                self._claim_round,
                retry_on=any_error,
                initial=0.5,
                cap=10.0,
                on_error=lambda exc, _: log.error("claiming deliveries failed", exc_info=exc),
            )
            if more:  # a limit was reached: claim again at once
                continue
            if not self._wake.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._idle_timeout())
            if self._wake.is_set() and self.policy.gather_s > 0:
                # woken by a commit: let the next few land too, so one claim takes them all (a storm
                # costs a claim per few ms, not one per alert)
                await asyncio.sleep(self.policy.gather_s)

    async def _may_send_digests(self) -> bool:
        """Ask the cluster's digest gate; one that fails or hangs never holds up the other deliveries
        (this node then sends digests too: a digest split in two, never one lost)."""
        if self.digest_gate is None:
            return True
        try:
            async with asyncio.timeout(DIGEST_GATE_TIMEOUT_S):
                return await self.digest_gate()
        except Exception as exc:
            log.warning("digest gate failed (%s); this node may send digests", str(exc) or type(exc).__name__)
            return True

    async def _claim_round(self) -> bool:
        """Claim what is due, in one transaction; True when a limit was reached (more may be due).
        Otherwise the same transaction notes when the next row falls due, for the idle sleep."""
        free = self.policy.concurrency - len(self._in_flight)
        self._starved = free <= 0
        if free <= 0:
            return False
        now = self._now()
        lease_until = now + timedelta(seconds=self.policy.lease_s)
        deliveries: list[Delivery] = []
        digests = self.policy.digest_max if await self._may_send_digests() else 0
        async with write_lock(self._sessionmaker), self._sessionmaker.begin() as session:
            repo = OutboxRepository(session)
            targets = await self._targets(session)
            exclude = [i for i, t in targets.items() if not t.enabled or self.breaker(i).blocked()]
            for webhook_id in [i for i in targets if i not in exclude and self.breaker(i).probe_due()]:
                exclude.append(webhook_id)
                rows = await repo.claim_probe(self.owner, webhook_id, now, lease_until)
                if rows:
                    self.breaker(webhook_id).begin_probe()
                    deliveries += self._group(rows, await self._targets_of(session, rows))
            claimed = await repo.claim_due(
                self.owner,
                now,
                lease_until,
                {AlertPriority.immediate: free, AlertPriority.digest: digests},
                exclude,
            )
            immediate = sum(r.priority == AlertPriority.immediate for r in claimed)
            more = immediate >= free or 0 < digests <= len(claimed) - immediate
            if not more:
                self._next_due = await repo.next_due(now, exclude)
                if not digests and self._next_due is not None:  # another node's digest: ask again in 1 s
                    self._next_due = max(self._next_due, now + timedelta(seconds=1))
            deliveries += self._group(claimed, await self._targets_of(session, claimed))
        for delivery in deliveries:
            task = spawn(
                self._deliver(delivery), name=f"argus.webhook:{delivery.target.id}:{delivery.key[:8]}"
            )
            self._in_flight.add(task)
            task.add_done_callback(self._done)
        return more

    def invalidate(self) -> None:
        """Webhooks changed through the API: read them again before the next claim."""
        self._targets_loaded_at = None

    async def _targets(self, session: AsyncSession) -> dict[int, Target]:
        """Webhooks, cached for `targets_ttl_s` (another process's edits show within it; this one's
        API calls `invalidate`). Claims exclude the disabled and blocked ones."""
        loaded = self._targets_loaded_at
        if loaded is None or time.monotonic() - loaded >= self.policy.targets_ttl_s:
            rows = await WebhookRepository(session).list()
            self._target_cache = {
                w.id: Target(w.id, w.name, w.url, w.secret, w.timeout_s, w.enabled) for w in rows
            }
            self._targets_loaded_at = time.monotonic()
        return self._target_cache

    async def _targets_of(self, session: AsyncSession, rows: list[Alert]) -> dict[int, Target]:
        """The targets of claimed rows; a webhook newer than the cache means reading them again."""
        if any(r.webhook_id not in self._target_cache for r in rows):
            self.invalidate()
            return await self._targets(session)
        return self._target_cache

    @staticmethod
    def _group(rows: list[Alert], targets: dict[int, Target]) -> list[Delivery]:
        out: list[Delivery] = []
        digests: dict[tuple[int, str], list[Alert]] = {}
        for row in rows:
            if row.priority == AlertPriority.digest and row.digest_id:
                digests.setdefault((row.webhook_id, row.digest_id), []).append(row)
            else:
                out.append(Delivery(targets[row.webhook_id], [row], row.id, "alert"))
        for (webhook_id, digest_id), group in digests.items():
            group.sort(key=lambda r: (r.created_at, r.id))
            out.append(Delivery(targets[webhook_id], group, digest_id, "digest"))
        return out

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._in_flight.discard(task)
        if self._starved:
            self._wake.set()

    def _idle_timeout(self) -> float:
        """Until the next row falls due (noted by the last claim round), a breaker's probe, or the
        safety-net poll for rows other processes insert."""
        waits = [self.policy.idle_poll_s]
        if not self._starved and self._next_due is not None:  # starved: a finished delivery wakes us
            waits.append((self._next_due - self._now()).total_seconds())
        for b in self.breakers.values():
            if b.blocked() and b.state == "open":
                waits.append(b.probe_at - b.clock())
        return max(0.0, min(waits))

    async def _deliver(self, delivery: Delivery) -> None:
        assert self.sender is not None and self._recorder is not None
        target = delivery.target
        breaker = self.breaker(target.id)
        was_down = breaker.state != "closed"
        try:
            outcome = await self.sender.send(
                target, delivery.payload(self._now()), delivery.key, delivery.kind, breaker
            )
        except Exception as exc:  # never a crashed task: the rows get a failed attempt and its error
            log.exception("webhook %s: delivery %s failed unexpectedly", target.name, delivery.key)
            outcome = Outcome(False, 1, error=f"internal error: {describe(exc)}")
        self.sent += 1
        if was_down and outcome.ok:
            log.info("webhook %s is back", target.name)
        self._recorder.add(
            Finished(target.id, target.name, delivery.key, delivery.rows, outcome, was_down and outcome.ok)
        )

    def stats(self) -> dict[str, Any]:
        return {
            "in_flight": len(self._in_flight),
            "sent": self.sent,
            "breakers": {i: str(b.state) for i, b in self.breakers.items() if b.state != "closed"},
        }
