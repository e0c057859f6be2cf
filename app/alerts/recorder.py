"""OutcomeRecorder: writes delivery outcomes back to the outbox, many per transaction (group commit).

Deliveries finish one by one; writing each in its own transaction would queue dozens of writers on
SQLite's single write lock. Here every outcome that finished while the last write ran goes into the
next one, so an idle system writes each outcome at once and a busy one writes a few per second.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.alerts.outbox import OutboxRepository, write_lock
from app.alerts.sender import Outcome
from app.kit.backoff import delay_for
from app.kit.retry import any_error, retry
from app.kit.tasks import cancel_and_wait, spawn
from app.models import Alert, AlertStatus

log = logging.getLogger("argus.alerts.recorder")


@dataclass(frozen=True)
class Finished:
    webhook_id: int
    webhook_name: str
    key: str
    rows: list[Alert]
    outcome: Outcome
    recovered: bool  # this success ended an outage of the webhook


class OutcomeRecorder:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        attempts_per_claim: int,
        backoff_initial_s: float,
        max_backoff_s: float,
        now: Callable[[], datetime],
        on_recovered: Callable[[], None],
        gather_s: float = 0.0,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._attempts_per_claim = attempts_per_claim
        self._backoff_initial_s = backoff_initial_s
        self._max_backoff_s = max_backoff_s
        self._now = now
        self._on_recovered = on_recovered
        self._gather_s = gather_s  # wait this long after the first outcome for more to share its write
        self._pending: list[Finished] = []
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[Any] | None = None

    async def __aenter__(self) -> Self:
        self._task = spawn(self._run(), name="argus.alerts.recorder")
        return self

    async def __aexit__(self, *_: object) -> None:
        try:
            await asyncio.wait_for(self.idle(), 10.0)
        except TimeoutError:
            log.error("%d delivery outcomes not recorded (those rows will be sent again)", len(self._pending))
        await cancel_and_wait(self._task)

    def add(self, finished: Finished) -> None:
        self._pending.append(finished)
        self._idle.clear()
        self._ready.set()

    async def idle(self) -> None:
        await self._idle.wait()

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            if self._gather_s > 0:
                await asyncio.sleep(self._gather_s)
            self._ready.clear()
            batch, self._pending = self._pending, []
            await self._write_until_done(batch)
            if any(f.recovered for f in batch):
                self._on_recovered()
            if not self._pending:
                self._idle.set()

    async def _write_until_done(self, batch: list[Finished]) -> None:
        """Until written, the rows stay leased: a crash meanwhile means they are sent again."""

        def failed(exc: BaseException, _: int) -> None:
            log.error("recording %d delivery outcomes failed; retrying", len(batch), exc_info=exc)

        await retry(lambda: self._write(batch), retry_on=any_error, initial=0.2, cap=5.0, on_error=failed)

    async def _write(self, batch: list[Finished]) -> None:
        now = self._now()
        delivered: dict[tuple[int, int | None], list[str]] = {}
        async with write_lock(self._sessionmaker), self._sessionmaker.begin() as session:
            repo = OutboxRepository(session)
            for f in batch:
                ids = [r.id for r in f.rows]
                if f.outcome.ok:
                    delivered.setdefault((f.outcome.attempts, f.outcome.status_code), []).extend(ids)
                    if f.recovered:
                        await repo.pull_forward(f.webhook_id, now)
                else:
                    await repo.finish(ids, **self._failure(f, now))
            for (attempts, code), ids in delivered.items():
                await repo.finish(
                    ids,
                    status=AlertStatus.delivered,
                    delivered_at=now,
                    last_error=None,
                    last_status_code=code,
                    add_attempts=attempts,
                    updated_at=now,
                )

    def _failure(self, f: Finished, now: datetime) -> dict[str, Any]:
        outcome = f.outcome
        values: dict[str, Any] = {
            "add_attempts": outcome.attempts,
            "last_status_code": outcome.status_code,
            "last_error": outcome.error,
            "updated_at": now,
        }
        if outcome.permanent:
            return {**values, "status": AlertStatus.dead}
        total = f.rows[0].attempts + outcome.attempts
        if now >= min(r.expires_at for r in f.rows):
            error = f"gave up after {total} attempts: {outcome.error}"
            log.error("webhook %s: delivery %s is dead (%s)", f.webhook_name, f.key, error)
            return {**values, "status": AlertStatus.dead, "last_error": error}
        next_at = now + timedelta(seconds=self._reschedule_delay(total, outcome))
        return {**values, "status": AlertStatus.retrying, "next_attempt_at": next_at}

    def _reschedule_delay(self, total_attempts: int, outcome: Outcome) -> float:
        """Grows per failed claim (not per HTTP attempt), jittered, capped; never sooner than Retry-After."""
        rounds = max(0, math.ceil(total_attempts / self._attempts_per_claim) - 1)
        delay = delay_for(rounds, self._backoff_initial_s, self._max_backoff_s)
        delay = min(self._max_backoff_s, delay * (1 + 0.2 * random.random()))
        return max(delay, outcome.retry_after or 0.0)
