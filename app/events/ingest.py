"""IngestCommitter: `POST /api/events` answers 202 only once its event is committed (group commit).

Requests that arrive together share one transaction: one task takes every pending ingest (waiting a
couple of milliseconds for company, up to `max_batch`), commits them at once, and only then hands the
batch to `after_commit` (the lifespan publishes it and waits for the alert engine's outbox commit), so
an alert never points at an ingested event that is not stored, and an event answered 202 has its
alerts decided. The logger is skipped for these: the row is already there.

A database that cannot store the batch makes every request in it a 503 (nothing is accepted that is
not stored); a row the database rejects for its content is a 422 for that request only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Self

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import ArgusError, Invalid
from app.events.repository import EventRepository
from app.events.types import NewEvent
from app.kit.tasks import cancel_and_wait, spawn

log = logging.getLogger("argus.ingest")


class IngestUnavailable(ArgusError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"event not stored, try again later: {reason}", 503)


@dataclass(slots=True)
class _Pending:
    event: NewEvent
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class IngestCommitter:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        after_commit: Callable[[list[NewEvent]], Awaitable[None]],
        *,
        max_batch: int = 256,
        max_wait_s: float = 0.002,
        max_pending: int = 10_000,
        timeout_s: float = 10.0,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._after_commit = after_commit
        self._finishing: set[asyncio.Task[None]] = set()
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._max_pending = max_pending
        self._timeout_s = timeout_s
        self._pending: list[_Pending] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.stored = 0
        self.commits = 0
        self.unavailable = 0  # requests answered 503
        self.rejected = 0  # requests answered 422 by the database
        self.write_error: str | None = None  # set while commits fail for want of a database

    async def __aenter__(self) -> Self:
        self._task = spawn(self._run(), name="argus.ingest")
        return self

    async def __aexit__(self, *_: object) -> None:
        """Commit what is pending (requests already waiting get their answer), then stop."""
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self._timeout_s)  # type: ignore[arg-type]
        except TimeoutError:
            await cancel_and_wait(self._task)
        if self._finishing:
            await asyncio.wait(self._finishing, timeout=self._timeout_s)
        self._fail(self._take(len(self._pending)), IngestUnavailable("the server is stopping"))
        log.info("ingest committer stopped: %s", self.stats())

    def stats(self) -> dict[str, object]:
        return {
            "pending": len(self._pending),
            "stored": self.stored,
            "commits": self.commits,
            "unavailable": self.unavailable,
            "rejected": self.rejected,
            "last_error": self.write_error,
        }

    async def submit(self, event: NewEvent) -> None:
        """Returns once `event` is committed; raises IngestUnavailable (503) or Invalid (422)."""
        if self._stopping or self._task is None:
            raise IngestUnavailable("the server is stopping")
        if len(self._pending) >= self._max_pending:
            self.unavailable += 1
            raise IngestUnavailable(f"{len(self._pending)} events are already waiting for the database")
        pending = _Pending(event)
        self._pending.append(pending)
        self._wake.set()
        try:
            # shield: a client that goes away does not pull its event out of a batch being written
            await asyncio.wait_for(asyncio.shield(pending.done), self._timeout_s)
        except TimeoutError:
            self.unavailable += 1
            raise IngestUnavailable(
                f"not confirmed within {self._timeout_s:g} s (it may be stored: a retry may store it twice)"
            ) from None

    async def _run(self) -> None:
        log.info("ingest committer started (batches of up to %d)", self._max_batch)
        while True:
            while not self._pending:
                if self._stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
            if self._max_batch > 1 and len(self._pending) < self._max_batch and not self._stopping:
                await asyncio.sleep(self._max_wait_s)  # requests arriving together share the commit
            await self._commit(self._take(self._max_batch))

    def _take(self, n: int) -> list[_Pending]:
        batch, self._pending = self._pending[:n], self._pending[n:]
        return batch

    async def _commit(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        try:
            await self._write([p.event for p in batch])
        except Exception as exc:
            if len(batch) == 1 or not _is_content_error(exc):
                self._failed(batch, exc)
                return
            for one in batch:  # some row is bad: find it, store the others
                await self._commit([one])
            return
        self.write_error = None
        self.commits += 1
        self.stored += len(batch)
        # off this task: the next batch is committed while this one's alerts are decided
        task = spawn(self._finish(batch), name="argus.ingest.after_commit")
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)
        log.debug(
            "committed %d ingested events in %.1f ms", len(batch), (time.perf_counter() - started) * 1e3
        )

    async def _write(self, events: list[NewEvent]) -> None:
        async with self._sessionmaker.begin() as session:
            await EventRepository(session).upsert_many([e.to_row() for e in events])

    async def _finish(self, batch: list[_Pending]) -> None:
        try:
            await self._after_commit([p.event for p in batch])
        except Exception:  # stored is what the client was promised; alerting logs its own failures
            log.exception("handing %d ingested events on failed", len(batch))
        finally:
            for p in batch:
                if not p.done.done():
                    p.done.set_result(None)

    def _failed(self, batch: list[_Pending], exc: Exception) -> None:
        reason = _reason(exc)
        if _is_content_error(exc):
            self.rejected += len(batch)
            log.error("ingested event rejected by the database: %s", reason)
            self._fail(batch, Invalid(f"the database rejected this event: {reason}"))
            return
        if self.write_error is None:
            log.error("ingest: the database cannot store events: %s", reason)
        self.write_error = reason
        self.unavailable += len(batch)
        self._fail(batch, IngestUnavailable(reason))

    @staticmethod
    def _fail(batch: list[_Pending], error: ArgusError) -> None:
        for p in batch:
            if not p.done.done():
                p.done.set_exception(error)
                p.done.exception()  # retrieved: a request that timed out must not log "never retrieved"


def _is_content_error(exc: BaseException) -> bool:
    """The row itself (a constraint, a value the column or the JSON encoder refuses) is at fault, not
    the database: anything else (locked, read-only, corrupt, gone) means no event can be stored now."""
    if isinstance(exc, IntegrityError | DataError):
        return True
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)


def _reason(exc: BaseException) -> str:
    """One short line: the driver's message without SQL or parameters (they may hold the event's data)."""
    orig = getattr(exc, "orig", None) or exc
    first = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    return f"{type(orig).__name__}: {first}"[:300]
