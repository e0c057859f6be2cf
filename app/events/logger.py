"""AsyncEventLogger: log() appends to memory; one task writes batches, one transaction per flush.

Durability ladder: memory buffer -> database; while the database refuses writes the buffer keeps
growing up to `buffer_max`, past which everything buffered goes to a JSONL spill file under DATA_DIR.
Spill files are replayed (oldest first, before anything newer) when the database is back, in this run or
the next, and deleted only once committed. Rows the database rejects for their content (not for being
unavailable) go to `rejected-*.jsonl` and are never retried blindly. Nothing accepted is dropped silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.events.repository import EventRepository
from app.events.types import NewEvent
from app.kit.retry import any_error, is_transient, retry
from app.kit.severity import Severity
from app.kit.spill import SpillDir
from app.kit.tasks import spawn
from app.metrics import LOGGER_BUFFER, LOGGER_FLUSH, LOGGER_SPILLED

log = logging.getLogger("argus.event_logger")


def collapse(events: list[NewEvent]) -> list[NewEvent]:
    """One row per id: the latest version, merged as the upsert would (EventRepository.upsert_many)."""
    latest: dict[str, NewEvent] = {}
    for event in events:
        prev = latest.get(event.id)
        latest[event.id] = event if prev is None else merge(prev, event)
    return list(latest.values())


def merge(prev: NewEvent, new: NewEvent) -> NewEvent:
    """`new` wins, except that ended_at/description/snapshot_path are never unset, severity never
    drops and `data` keys are merged: a version evolved from an older copy (the episode's next update
    after a VLM verdict) must not undo what a newer one established."""
    severity = Severity.worst(new.severity, prev.severity)
    sticky = {
        "ended_at": new.ended_at or prev.ended_at,
        "description": new.description or prev.description,
        "snapshot_path": new.snapshot_path or prev.snapshot_path,
        "data": {**prev.data, **new.data},
    }
    if severity is new.severity and all(getattr(new, k) == v for k, v in sticky.items()):
        return new
    return new.evolve(severity=severity, **sticky)


class AsyncEventLogger:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        spill_dir: Path,
        *,
        flush_size: int = 10,
        flush_interval_s: float = 1.0,
        buffer_max: int = 10_000,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 10.0,
        shutdown_timeout_s: float = 5.0,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._spill_dir = Path(spill_dir)
        self._spills = SpillDir(self._spill_dir)
        self._flush_size = flush_size
        self._interval = flush_interval_s
        self._buffer_max = buffer_max
        self._retry_initial = retry_initial_s
        self._retry_max = retry_max_s
        self._shutdown_timeout = shutdown_timeout_s
        self._buffer: list[NewEvent] = []
        self._writing: list[NewEvent] = []  # the batch taken from the buffer, until it is committed
        self._oldest_at = time.monotonic()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._closed = False
        self._failing = False
        self._spill_pending = False
        self._flush_waiters: list[asyncio.Future[None]] = []
        self.flushed = 0  # rows committed (after collapsing versions)
        self.flushes = 0  # committed transactions for the buffer
        self.spilled = 0
        self.replayed = 0
        self.rejected = 0
        self.last_error: str | None = None

    @classmethod
    def from_settings(cls, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> Self:
        return cls(
            sessionmaker,
            settings.data_dir / "spill",
            flush_size=settings.event_flush_size,
            flush_interval_s=settings.event_flush_interval_s,
            buffer_max=settings.event_buffer_max,
        )

    # -- public face ---------------------------------------------------------------------------------

    def log(self, event: NewEvent) -> None:
        """Non-blocking (a list append); call it from the event loop's thread only."""
        if self._closed:
            self._spill_after_close(event)
            return
        buf = self._buffer
        buf.append(event)
        n = len(buf)
        if n == 1:
            self._oldest_at = time.monotonic()
            self._wake.set()
        elif n > self._buffer_max or (n >= self._flush_size and not self._failing):
            self._wake.set()
        LOGGER_BUFFER.set(n)

    async def flush(self) -> None:
        """Write what is buffered now and wait for it (tests, shutdown hooks); runs in the writer task,
        so versions of one event are never committed out of order. Waits while the database is down."""
        if self._task is None or self._closed:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flush_waiters.append(done)
        self._wake.set()
        await done

    async def start(self) -> None:
        self._spill_dir.mkdir(parents=True, exist_ok=True)
        self._spill_pending = bool(self._spill_files())
        if self._spill_pending:
            try:
                await self._replay_spills()
            except Exception as exc:
                self._note_failure(exc)  # the loop retries with backoff
        self._task = spawn(self._run(), name="argus.event_logger")

    async def stop(self) -> None:
        """Flush everything (or spill it when the database stays down) and stop the task."""
        if self._task is None or self._closed:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self._shutdown_timeout + 5)
        except TimeoutError:
            log.error("event logger did not stop in time; spilling what it holds")
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        except Exception:
            log.exception("event logger task failed; spilling what it holds")
        finally:
            self._closed = True
            if self._buffer:  # only when the task was cancelled mid-write or its spill failed
                self._spill_sync(self._take_all())

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def pending(self, event_id: str) -> NewEvent | None:
        """The newest version of an event logged but not committed yet (None once it is in the database).

        An event reaches the live feed before the logger's next flush; its snapshot is already on disk, so
        `/snapshot.jpg` can serve it from here instead of a 404 until the row lands."""
        for event in itertools.chain(reversed(self._buffer), reversed(self._writing)):
            if event.id == event_id:
                return event
        return None

    @property
    def write_error(self) -> str | None:
        """Why the database refuses the buffer's writes right now (None while they succeed)."""
        return self.last_error if self._failing else None

    def stats(self) -> dict[str, Any]:
        return {
            "buffered": len(self._buffer),
            "flushed": self.flushed,
            "flushes": self.flushes,
            "spilled": self.spilled,
            "replayed": self.replayed,
            "rejected": self.rejected,
            "spill_files": len(self._spill_files()),
            "last_error": self.last_error,
        }

    # -- the writer task -----------------------------------------------------------------------------

    async def _run(self) -> None:
        log.info("event logger started (flush at %d events or %.2fs)", self._flush_size, self._interval)
        try:
            while True:
                await self._wait_for_batch()
                if self._stopping:
                    break
                await self._flush_pending()
            await self._final_flush()
        finally:
            self._release_waiters(self._flush_waiters)
            log.info("event logger stopped: %s", self.stats())

    async def _wait_for_batch(self) -> None:
        while not (self._stopping or self._buffer or self._spill_pending or self._flush_waiters):
            self._wake.clear()
            await self._wake.wait()
        while not self._stopping and not self._flush_waiters and len(self._buffer) < self._flush_size:
            remaining = self._oldest_at + self._interval - time.monotonic()
            if remaining <= 0:
                return
            self._wake.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
            except TimeoutError:
                return

    async def _flush_pending(self) -> None:
        """Write until the buffer is empty, retrying with backoff while the database refuses."""
        waiters, self._flush_waiters = self._flush_waiters, []

        async def failed(exc: BaseException, _: int) -> None:
            self._note_failure(exc)
            await self._spill_if_over()

        try:
            await retry(
                self._flush_once,
                retry_on=any_error,
                initial=self._retry_initial,
                cap=self._retry_max,
                on_error=failed,
                stop_when=lambda: self._stopping,
                sleep=self._sleep_or_wake,
            )
        except Exception:
            self._flush_waiters[:0] = waiters  # stopping: the final flush answers them
            return
        if self._failing:
            log.warning("event database writable again (%d events written)", self.flushed)
            self._failing = False
        self._release_waiters(waiters)

    async def _final_flush(self) -> None:
        deadline = time.monotonic() + self._shutdown_timeout
        while self._buffer:  # pending spill files stay on disk for the next start
            try:
                await retry(
                    self._flush_once,
                    retry_on=any_error,
                    initial=min(0.2, self._retry_initial),
                    cap=1.0,
                    on_error=lambda exc, _: self._note_failure(exc),
                    deadline_s=max(0.0, deadline - time.monotonic()),
                )
            except Exception:  # noted by on_error; what is left is spilled below
                break
        if self._buffer:
            await self._spill(self._take_all())

    async def _flush_once(self) -> None:
        if self._spill_pending:
            await self._replay_spills()
        if not self._buffer:
            return
        batch = self._writing = self._take_all()
        started = time.perf_counter()
        try:
            rows = await self._write(batch)
        except BaseException:
            self._buffer[:0] = batch  # back in front: older than anything logged meanwhile
            LOGGER_BUFFER.set(len(self._buffer))
            raise
        finally:
            self._writing = []
        LOGGER_FLUSH.observe(time.perf_counter() - started)
        self.flushed += rows
        self.flushes += 1

    async def _write(self, events: list[NewEvent]) -> int:
        """One transaction for the whole batch; bad rows are set aside one by one, never retried."""
        latest = collapse(events)
        try:
            async with self._sessionmaker.begin() as session:
                await EventRepository(session).upsert_many([e.to_row() for e in latest])
            return len(latest)
        except Exception as exc:
            if is_transient(exc):
                raise
            log.error("event batch rejected by the database (%s); writing rows one by one", exc)
        written, bad = 0, []
        for event in latest:
            try:
                async with self._sessionmaker.begin() as session:
                    await EventRepository(session).upsert_many([event.to_row()])
                written += 1
            except Exception as exc:
                if is_transient(exc):
                    raise
                bad.append((event, exc))
        if bad:
            await self._reject(bad)
        return written

    @staticmethod
    def _release_waiters(waiters: list[asyncio.Future[None]]) -> None:
        for done in waiters:
            if not done.done():
                done.set_result(None)
        waiters.clear()

    def _take_all(self) -> list[NewEvent]:
        batch, self._buffer = self._buffer, []
        LOGGER_BUFFER.set(0)
        return batch

    def _note_failure(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"[:500]
        if not self._failing:
            log.error("event database unavailable, buffering (%d held): %s", len(self._buffer), exc)
        self._failing = True

    async def _sleep_or_wake(self, delay: float) -> None:
        deadline = time.monotonic() + delay
        while not self._stopping and (remaining := deadline - time.monotonic()) > 0:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
            await self._spill_if_over()

    async def _spill_if_over(self) -> None:
        if len(self._buffer) > self._buffer_max:
            await self._spill(self._take_all())

    # -- spill files ---------------------------------------------------------------------------------

    def _spill_files(self) -> list[Path]:
        return self._spills.files("events")

    async def _spill(self, events: list[NewEvent]) -> None:
        try:
            path = await asyncio.to_thread(self._write_spill, events)
        except OSError as exc:  # the disk refuses too: memory is the last place left
            self._buffer[:0] = events
            log.error("could not spill %d events (%s); keeping them in memory", len(events), exc)
            return
        self._count_spill(len(events))
        log.warning("spilled %d events to %s (database unavailable: %s)", len(events), path, self.last_error)

    def _write_spill(self, events: list[NewEvent]) -> Path:
        """Blocking (runs in a thread); atomic by rename so a replay never reads half a file."""
        return self._spills.write("events", (e.to_record() for e in events))

    def _spill_sync(self, events: list[NewEvent]) -> None:
        self._write_spill(events)
        self._count_spill(len(events))

    def _count_spill(self, n: int) -> None:
        self.spilled += n
        self._spill_pending = True
        LOGGER_SPILLED.inc(n)

    def _spill_after_close(self, event: NewEvent) -> None:
        log.warning("event %s logged after the logger stopped: spilling it for the next start", event.id)
        self._spill_sync([event])

    async def _reject(self, bad: list[tuple[NewEvent, Exception]]) -> None:
        records = [{**e.to_record(), "error": str(exc)[:500]} for e, exc in bad]
        path = await self._spills.write_async("rejected", records)
        self.rejected += len(bad)
        log.error("%d events rejected by the database, kept in %s", len(bad), path)

    async def _replay_spills(self) -> None:
        """Oldest file first, one transaction each; a file goes only once its rows are committed."""

        async def replay(path: Path, lines: list[str]) -> bool:
            events, bad = _parse_spill(path, lines)
            if bad:
                await self._reject(bad)
            await self._write(events)
            self.replayed += len(events)  # versions read back, before collapsing
            log.warning("replayed %d events from %s", len(events), path.name)
            return True

        await self._spills.replay("events", replay)
        self._spill_pending = False


def _parse_spill(path: Path, lines: list[str]) -> tuple[list[NewEvent], list[tuple[NewEvent, Exception]]]:
    events: list[NewEvent] = []
    bad: list[tuple[NewEvent, Exception]] = []
    for n, line in enumerate(lines, 1):
        try:
            events.append(NewEvent.from_json(json.loads(line)))
        except Exception as exc:
            log.error("%s line %d is not an event (%s): %.200s", path.name, n, exc, line)
            stub = NewEvent(None, "unreadable", Severity.low, datetime.now(UTC), data={"line": line})
            bad.append((stub, exc))
    return events, bad
