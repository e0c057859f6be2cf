"""Recorder: the lifespan part that runs a SegmentWriter for every camera recording continuously.

It follows the running cameras by polling `targets()` (camera id -> packet ring of each running camera
whose record mode is "continuous"; the lifespan adapts the camera manager to it, so this package never
imports the cameras package), and keeps the `recordings` index from the writers' events. On start it
finishes or discards the segments a crash left half-written, and deletes files no row points to.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.cameras.repository import CameraRepository
from app.kit.tasks import cancel_and_wait, spawn
from app.metrics import RECORDING_BYTES, RECORDING_SEGMENTS
from app.models import Recording
from app.recording.repository import RecordingRepository
from app.recording.segments import RECORDINGS, SegmentClosed, SegmentEvent, SegmentWriter, finish_file
from app.stream.packets import PacketRing

log = logging.getLogger("argus.recording")
POLL_S = 1.0


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class Recorder:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        data_dir: Path,
        segment_s: float,
        targets: Callable[[], Mapping[int, PacketRing]],
        may_write: Callable[[], bool] = lambda: True,
        on_cameras_gone: Callable[[], None] = lambda: None,
        cameras: Callable[[], Iterable[int]] = tuple,
        poll_s: float = POLL_S,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.data_dir = Path(data_dir)
        self.segment_s = segment_s
        self.targets = targets
        self.may_write = may_write
        self.on_cameras_gone = on_cameras_gone
        self.cameras = cameras  # every running camera: one that goes may have been deleted
        self._running: set[int] = set()
        self.poll_s = poll_s
        self.writers: dict[int, SegmentWriter] = {}
        self._events: asyncio.Queue[SegmentEvent] = asyncio.Queue()
        self._tasks: list[asyncio.Task[Any]] = []
        self.index_errors = 0

    async def __aenter__(self) -> Self:
        await recover(self.sessionmaker, self.data_dir)
        self._loop = asyncio.get_running_loop()
        self._tasks = [
            spawn(self._follow(), name="argus.recorder"),
            spawn(self._index(), name="argus.recorder-index"),
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await cancel_and_wait(self._tasks[0])
        await asyncio.gather(*(asyncio.to_thread(w.stop) for w in self.writers.values()))
        self.writers.clear()
        await self._events.join()  # the last SegmentClosed rows are written before the engine goes
        await cancel_and_wait(self._tasks[1])

    def _sink(self, event: SegmentEvent) -> None:
        """Writer threads: hand the event to the loop (the index is written there)."""
        self._loop.call_soon_threadsafe(self._events.put_nowait, event)

    async def _follow(self) -> None:
        while True:
            await self.reconcile()
            await asyncio.sleep(self.poll_s)

    async def reconcile(self) -> None:
        """A writer per wanted camera (a restarted pipeline has a new ring: a new writer); stop the rest."""
        wanted = dict(self.targets())
        stale = [cid for cid, w in self.writers.items() if wanted.get(cid) is not w.ring]
        await asyncio.gather(*(asyncio.to_thread(self.writers.pop(cid).stop) for cid in stale))
        for cid, ring in wanted.items():
            if cid not in self.writers:
                writer = SegmentWriter(cid, ring, self.data_dir, self.segment_s, self._sink, self.may_write)
                writer.start()
                self.writers[cid] = writer
        running = set(self.cameras()) | set(wanted)
        if self._running - running:
            self.on_cameras_gone()  # a deleted camera's files go now, not at the next retention run
        self._running = running

    async def _index(self) -> None:
        while True:
            event = await self._events.get()
            try:
                await self._write(event)
            except SQLAlchemyError as exc:
                self.index_errors += 1
                log.warning("recording index: %s not written: %s", event.path, exc)
            finally:
                self._events.task_done()

    async def _write(self, event: SegmentEvent) -> None:
        async with self.sessionmaker() as session:
            row = await RecordingRepository(session).by_path(event.path)
            if row is None:
                if not await CameraRepository(session).exists(event.camera_id):
                    return  # deleted while it recorded: the purge takes the file
                row = Recording(camera_id=event.camera_id, path=event.path, started_at=_dt(event.started_at))
                session.add(row)
            if isinstance(event, SegmentClosed):
                row.ended_at = _dt(event.ended_at)
                row.bytes = event.bytes
                row.complete = True
            await session.commit()
        if isinstance(event, SegmentClosed):
            RECORDING_SEGMENTS.labels(str(event.camera_id)).inc()
            RECORDING_BYTES.labels(str(event.camera_id)).inc(event.bytes)

    def stats(self) -> dict[str, Any]:
        return {
            "recording": sorted(cid for cid, w in self.writers.items() if w.recording),
            "segments_written": sum(w.segments for w in self.writers.values()),
            "refused_low_disk": sum(w.refused for w in self.writers.values()),
            "index_errors": self.index_errors,
        }


def pipeline_targets(manager: Any) -> Callable[[], dict[int, PacketRing]]:
    """`targets` over the camera manager (duck-typed: recording never imports cameras): the ring of each
    running camera whose record mode is continuous."""

    def targets() -> dict[int, PacketRing]:
        found = {}
        for camera_id in manager.camera_ids():
            pipeline = manager.get(camera_id)
            ring = getattr(getattr(pipeline, "source", None), "ring", None)
            if ring is not None and getattr(pipeline.config, "record_mode", None) == "continuous":
                found[camera_id] = ring
        return found

    return targets


async def recover(sessionmaker: async_sessionmaker[AsyncSession], data_dir: Path) -> None:
    """At start, before any writer: finish or discard every unfinished segment, forget rows whose file is
    gone (a crash between a file's deletion and its row's), and index the playable files that have no row
    (a crash, or a database down, before the row was written); what cannot be played is deleted."""
    async with sessionmaker() as session:
        repo = RecordingRepository(session)
        rows = await repo.unfinished()
        for row in rows:
            done = await asyncio.to_thread(finish_file, data_dir / row.path)
            if done is None:
                await session.delete(row)
                continue
            row.ended_at = _dt(row.started_at.timestamp() + done.duration_s)
            row.bytes, row.complete = done.bytes, True
        await session.flush()
        known = await repo.ids_by_path()
        missing = await asyncio.to_thread(_without_file, data_dir, known)
        if missing:
            await repo.delete_ids(missing)
        cameras = await CameraRepository(session).existing_ids()
        stray = await asyncio.to_thread(_stray_files, data_dir, set(known))
        adopted = 0
        for path in stray:
            adopted += await _adopt(session, data_dir, path, cameras)
        await session.commit()
    if rows or stray or missing:
        log.info(
            "recordings: %d unfinished segments checked, %d rows without a file forgotten, "
            "%d files without a row indexed, %d deleted",
            len(rows),
            len(missing),
            adopted,
            len(stray) - adopted,
        )


async def _adopt(session: AsyncSession, data_dir: Path, path: Path, cameras: set[int]) -> int:
    """Index a segment file that has no row (1), or delete it (0) when it is not playable or not ours."""
    rel = path.relative_to(data_dir).as_posix()
    parsed = _parse(rel)
    done = None
    if parsed is not None and parsed[0] in cameras:
        done = await asyncio.to_thread(finish_file, path)
    if done is None:
        await asyncio.to_thread(path.unlink, True)  # missing_ok: finish_file deleted it already
        return 0
    camera_id, started = parsed  # type: ignore[misc]
    end = _dt(started.timestamp() + done.duration_s)
    session.add(
        Recording(
            camera_id=camera_id, path=rel, started_at=started, ended_at=end, bytes=done.bytes, complete=True
        )
    )
    return 1


def _parse(rel: str) -> tuple[int, datetime] | None:
    """(camera id, start) from segment_relpath()'s layout, or None for any other file."""
    parts = rel.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != RECORDINGS or not parts[2].isdigit():
        return None
    try:
        started = datetime.strptime(f"{parts[3]} {parts[4]}", "%Y-%m-%d %H-%M-%S.%f.mp4")
    except ValueError:
        return None
    return int(parts[2]), started.replace(tzinfo=UTC)


def _without_file(data_dir: Path, known: dict[str, int]) -> list[int]:
    return [i for p, i in known.items() if not (data_dir / p).is_file()]


def _stray_files(data_dir: Path, known: set[str]) -> list[Path]:
    root = data_dir / RECORDINGS
    files = root.rglob("*") if root.is_dir() else ()
    return [p for p in files if p.is_file() and p.relative_to(data_dir).as_posix() not in known]
