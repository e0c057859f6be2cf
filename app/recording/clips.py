"""Event clips: every event from a recording camera gets its video, remuxed from the packet ring.

    recorder = ClipRecorder(data_dir, sessionmaker, lookup, max_s=300)   # lookup(camera_id) -> ClipFeed
    bus.subscribe("clips", recorder.consider, direct=True)               # open: start; close: stop later

At an event's open a tap is taken on its camera's ring from `started_at - pre_roll_s` (so the clip starts
at the keyframe at or before that), and a writer thread remuxes every packet (no re-encode) into a
fragmented MP4 (`moov` first, one `moof`+`mdat` per GOP) until `post_roll_s` after the event's close. A
fragmented file is valid up to its last complete fragment while it grows: the API serves that much of a
clip being written (`readable`), and a crash is repaired at the next start (app.recording.clip_store).
A clip longer than `max_s` continues in a next part file; so does one whose camera reconnected (new
stream parameters, timestamps restart). The row's `clip_path` (part 1) and `clip_parts` are set by a
direct UPDATE once a part has its first fragment; the event logger's upsert never touches them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.events.types import NewEvent, Phase
from app.kit.tasks import cancel_and_wait, spawn
from app.recording import clip_store
from app.recording.clip_store import ClipRepository
from app.recording.part_writer import PartWriter
from app.stream.packets import Packet, PacketRing, PacketTap

log = logging.getLogger("argus.clips")


@dataclass(frozen=True, slots=True)
class ClipFeed:
    """What the recorder needs of a running camera."""

    ring: PacketRing
    pre_roll_s: float
    post_roll_s: float


FeedLookup = Callable[[int], ClipFeed | None]  # None: no clip (camera not running, or recording off)


def pipeline_feeds(get_pipeline: Callable[[int], Any]) -> FeedLookup:
    """A lookup over the camera manager's pipelines (duck-typed: recording never imports cameras)."""

    def lookup(camera_id: int) -> ClipFeed | None:
        pipeline = get_pipeline(camera_id)
        ring = getattr(getattr(pipeline, "source", None), "ring", None)
        config = getattr(pipeline, "config", None)
        if ring is None or config is None or getattr(config, "record_mode", "events") == "off":
            return None
        return ClipFeed(ring, float(config.pre_roll_s), float(config.post_roll_s))

    return lookup


@dataclass
class ClipPart:
    number: int
    rel: str  # relative to DATA_DIR, as stored in the row
    readable: int = 0  # bytes a reader may have: the end of the last complete fragment
    finished: bool = False


@dataclass
class ClipWriter:
    """One event's clip: a thread draining its tap into part files."""

    event_id: str
    camera_id: int
    tap: PacketTap
    data_dir: Path
    max_s: float
    on_progress: Callable[[ClipWriter], None]
    post_roll_s: float = 5.0
    idle_timeout_s: float = 30.0
    stop_at: float | None = None  # wall time past which packets are not wanted (close + post-roll)
    parts: list[ClipPart] = field(default_factory=list)
    packets: int = 0
    skipped: int = 0
    cpu_s: float = 0.0  # thread CPU time spent writing (the clip's cost)
    done: bool = False
    thread: threading.Thread | None = None
    _writer: PartWriter | None = None
    noted: tuple[str | None, int] | None = None  # what the row was last told (loop thread only)

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, name=f"argus-clip-{self.event_id[:8]}", daemon=True)
        self.thread.start()

    def finish_at(self, wall: float) -> None:
        self.stop_at = wall

    def abort(self) -> None:
        """Stop now: what is queued is written, then the file is finished."""
        self.tap.close()

    def run(self) -> None:
        started = time.thread_time()
        try:
            self._drain()
        except Exception:
            log.exception("clip of event %s failed; keeping what was written", self.event_id)
        finally:
            self.tap.close()
            self._close()
            self.cpu_s = time.thread_time() - started
            self.done = True
            self.on_progress(self)

    def _drain(self) -> None:
        last_packet = time.time()
        while True:
            packet = self.tap.get(timeout=0.25)
            now = time.time()
            if packet is None:
                if self.tap.closed or self._expired(now, last_packet):
                    return
                continue
            last_packet = now
            if self.stop_at is not None and packet.at > self.stop_at:
                return
            self.packets += 1
            writer = self._route(packet)
            if writer is not None and writer.write(packet):
                self.parts[-1].readable = writer.readable
                self.on_progress(self)

    def _expired(self, now: float, last_packet: float) -> bool:
        """The close (plus post-roll) has passed with no packet to show it, or the camera went silent."""
        if self.stop_at is not None and now > self.stop_at + 2.0:
            return True
        return now - last_packet > self.idle_timeout_s

    def _route(self, packet: Packet) -> PartWriter | None:
        """The part this packet goes to: a new one (at a keyframe) past max_s or on a new connection."""
        writer = self._writer
        if writer is not None and not writer.wants_new_part(packet, self.max_s):
            return writer
        self._close()
        if not packet.key:
            self.skipped += 1  # a part starts at a keyframe (a new connection's first one)
            return None
        number = len(self.parts) + 1
        rel = clip_store.part_relpath(self.camera_id, self.event_id, number)
        self._writer = PartWriter(self.data_dir / rel, packet)
        self.parts.append(ClipPart(number, rel))
        return self._writer

    def _close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        part = self.parts[-1]
        part.readable = writer.close()
        part.finished = True
        if not part.readable:
            self.parts.pop()
        self.on_progress(self)

    def readable(self, number: int) -> int | None:
        """Bytes of part `number` a reader may have while it is written; None once it is finished."""
        for part in list(self.parts):
            if part.number == number:
                return None if part.finished else part.readable
        return None if self.done else 0

    def stored(self) -> tuple[str | None, int]:
        """(part 1's path, number of readable parts): what the row should say."""
        parts = [p for p in list(self.parts) if p.readable]
        return (parts[0].rel if parts else None), len(parts)


class ClipRecorder:
    def __init__(
        self,
        data_dir: Path,
        sessionmaker: async_sessionmaker[AsyncSession],
        lookup: FeedLookup,
        *,
        max_s: float = 300.0,
        idle_timeout_s: float = 30.0,
        retry_s: float = 1.0,
        give_up_s: float = 120.0,
        may_write: Callable[[], bool] = lambda: True,
    ) -> None:
        self.data_dir = Path(data_dir)
        self._repo = ClipRepository(sessionmaker)
        self._lookup = lookup
        self.max_s = max_s
        self._idle_timeout_s = idle_timeout_s
        self._retry_s = retry_s
        self._give_up_s = give_up_s
        self._may_write = may_write  # the disk floor (retention): no new clip while it is not met
        self._active: dict[str, ClipWriter] = {}
        self._pending: dict[str, tuple[str | None, int, float]] = {}  # event id -> (path, parts, since)
        self._fences: dict[str, tuple[int, int]] = {}  # event id -> (camera id, lease token): cluster mode
        self._wake = asyncio.Event()
        self._rows = asyncio.Lock()  # row writes and a camera's unlinking never interleave
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self.started = 0
        self.refused = 0
        self.finished = 0
        self.cpu_s = 0.0

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            await clip_store.recover(self.data_dir, self._repo)
        except Exception:
            log.exception("clip recovery failed; unfinished clips stay until the next start")
        self._task = spawn(self._update_rows(), name="argus.clips")

    async def stop(self) -> None:
        self._stopping = True
        writers = list(self._active.values())
        for writer in writers:
            writer.abort()
        for writer in writers:
            if writer.thread is not None:
                await asyncio.to_thread(writer.thread.join)
        await cancel_and_wait(self._task)
        await self._write_pending(final=True)

    # -- the bus subscriber --------------------------------------------------------------------------

    def consider(self, event: NewEvent) -> None:
        """Direct subscriber: never blocks (a tap and a thread at open, a float at close)."""
        if event.camera_id is None or self._stopping:
            return
        writer = self._active.get(event.id)
        if writer is None and event.phase == Phase.open:
            writer = self._begin(event)
        if writer is None:
            return
        if event.ended_at is not None:
            writer.finish_at(event.ended_at.timestamp() + writer.post_roll_s)
        elif event.source != "pipeline":  # an outside signal has no close: it is a moment
            writer.finish_at(event.started_at.timestamp() + writer.post_roll_s)

    def _begin(self, event: NewEvent) -> ClipWriter | None:
        assert event.camera_id is not None
        feed = self._lookup(event.camera_id)
        if feed is None:
            return None
        if not self._may_write():
            self.refused += 1
            log.warning("no clip for event %s: the disk is below its free-space floor", event.id)
            return None
        tap = feed.ring.tap(since=event.started_at.timestamp() - feed.pre_roll_s)
        writer = ClipWriter(
            event.id,
            event.camera_id,
            tap,
            self.data_dir,
            self.max_s,
            self._progress,
            post_roll_s=feed.post_roll_s,
            idle_timeout_s=self._idle_timeout_s,
        )
        self._active[event.id] = writer
        if event.fence is not None:  # its row link is refused once the camera's lease moves on
            self._fences[event.id] = (event.camera_id, event.fence)
        self.started += 1
        writer.start()
        return writer

    def _progress(self, writer: ClipWriter) -> None:
        """Writer thread: hand the new state to the loop (rows are written there)."""
        if self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(self._note, writer)
        except RuntimeError:  # the loop closed under a writer that outlived stop(): the next start relinks
            log.warning("clip of event %s finished after shutdown", writer.event_id)

    def _note(self, writer: ClipWriter) -> None:
        """Loop thread: queue a row update when what the row should say changed (a part's first fragment,
        a part lost), not for every fragment."""
        stored = writer.stored()
        if stored != writer.noted and (stored[0] is not None or writer.noted is not None):
            writer.noted = stored
            since = self._pending.get(writer.event_id, (None, 0, time.monotonic()))[2]
            self._pending[writer.event_id] = (*stored, since)
            self._wake.set()
        if writer.done and self._active.get(writer.event_id) is writer:
            del self._active[writer.event_id]
            self.finished += 1
            self.cpu_s += writer.cpu_s

    # -- rows ----------------------------------------------------------------------------------------

    async def _update_rows(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0.05)  # let a burst of fragments share one transaction
            await self._write_pending()
            if self._pending:  # rows not stored yet (the logger flushes every second): try again
                await asyncio.sleep(self._retry_s)
                self._wake.set()

    async def _write_pending(self, final: bool = False) -> None:
        async with self._rows:
            await self._write_batch(final)

    async def _write_batch(self, final: bool) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        try:
            fences = {k: self._fences[k] for k in batch if k in self._fences}
            missing = await self._repo.set_clips({k: (v[0], v[1]) for k, v in batch.items()}, fences)
        except Exception as exc:
            log.warning("clip paths not stored yet (%s); retrying", exc)
            missing = set(batch)
        now = time.monotonic()
        for event_id in missing:
            path, parts, since = batch[event_id]
            if final or now - since > self._give_up_s:
                log.warning("event %s: no row to link its clip to; the next start links it", event_id)
                continue
            self._pending.setdefault(event_id, (path, parts, since))
        for event_id in batch:
            if event_id not in self._pending and event_id not in self._active:
                self._fences.pop(event_id, None)

    # -- reads and deletes ---------------------------------------------------------------------------

    def writer(self, event_id: str) -> ClipWriter | None:
        return self._active.get(event_id)

    def readable(self, event_id: str, part: int) -> int | None:
        """Bytes of a clip part being written that a reader may have; None when it is not being written."""
        writer = self._active.get(event_id)
        return None if writer is None else writer.readable(part)

    async def camera_deleted(self, camera_id: int) -> None:
        """Stop the camera's clips, delete its files and unlink them from its events (which stay)."""
        writers = [w for w in self._active.values() if w.camera_id == camera_id]
        for writer in writers:
            writer.abort()
        for writer in writers:
            if writer.thread is not None:
                await asyncio.to_thread(writer.thread.join)
        async with self._rows:
            for writer in writers:
                self._pending.pop(writer.event_id, None)
                self._fences.pop(writer.event_id, None)
            await asyncio.to_thread(clip_store.delete_camera_files, self.data_dir, camera_id)
            await self._repo.clear_camera(camera_id)

    async def event_deleted(self, event_id: str, camera_id: int | None) -> None:
        """For whoever deletes events: the clip goes with its row."""
        writer = self._active.get(event_id)
        if writer is not None:
            writer.abort()
            if writer.thread is not None:
                await asyncio.to_thread(writer.thread.join)
        self._pending.pop(event_id, None)
        self._fences.pop(event_id, None)
        if camera_id is not None:
            await asyncio.to_thread(clip_store.delete_event_files, self.data_dir, camera_id, event_id)

    def stats(self) -> dict[str, Any]:
        return {
            "active": len(self._active),
            "started": self.started,
            "finished": self.finished,
            "refused": self.refused,
            "pending_rows": len(self._pending),
            "cpu_s": round(self.cpu_s, 4),
        }
