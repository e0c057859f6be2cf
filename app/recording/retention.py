"""Retention: media is deleted by age, by camera deletion, and oldest-first below a free-space floor.

Every `interval_s` (and whenever a writer finds the disk low, or a camera goes away) one sweep:
1. deletes the segments and clips of cameras that no longer exist;
2. by age: segments and clips older than their camera's `record.retain_days`, event snapshots older
   than ARGUS_SNAPSHOT_RETAIN_DAYS;
3. below ARGUS_MIN_FREE_DISK_MB free under DATA_DIR: the oldest media first, segments, clips and
   snapshots alike, until the floor is met again. What is being written is never touched.
Writers ask `space_ok()` before each new file, so Argus stops writing rather than fill the disk. Rows
follow their files: segment rows are deleted, events lose their clip and snapshot paths.
`free_bytes` is injectable (tests drive the floor with it); the default asks the filesystem.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.cameras.repository import CameraRepository
from app.config import Settings
from app.events.repository import EventRepository
from app.kit.tasks import cancel_and_wait, spawn
from app.metrics import MEDIA_DELETED, MEDIA_DISK_FREE, MEDIA_DISK_LOW
from app.recording.repository import RecordingRepository
from app.recording.segments import RECORDINGS

log = logging.getLogger("argus.retention")
CLIPS = "media/clips"  # app/recording/clip_store.py: <camera>/<event id>[.<part>].mp4
EXPORTS = "media/exports"  # app/recording/endpoints.py
SNAPSHOTS = "snapshots"  # app/events/snapshots.py: <camera>/<day>/<event id>.jpg
WRITING = ".writing"  # a clip part still being written has this marker next to it
DAY = 86_400.0
MB = 1024 * 1024
_CHUNK = 500


def disk_free(path: Path) -> int:
    return shutil.disk_usage(path).free


@dataclass(slots=True)
class Media:
    """One deletable piece: a segment (row id), a clip (all its parts) or a snapshot."""

    kind: str  # "segments" | "clips" | "snapshots"
    at: float  # its age: segment start, newest clip part or snapshot modification time
    paths: list[Path]
    key: int | str | None = None  # recording id, or event id


@dataclass(slots=True)
class Deleted:
    segments: list[int] = field(default_factory=list)  # recording ids
    clips: list[str] = field(default_factory=list)  # event ids
    snapshots: list[str] = field(default_factory=list)  # paths relative to DATA_DIR
    bytes: int = 0

    def add(self, item: Media, data_dir: Path) -> None:
        for path in item.paths:
            try:
                self.bytes += path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                pass
        if item.kind == "segments":
            self.segments.append(int(item.key))  # type: ignore[arg-type]
        elif item.kind == "clips":
            self.clips.append(str(item.key))
        else:
            self.snapshots.append(item.paths[0].relative_to(data_dir).as_posix())

    @property
    def count(self) -> int:
        return len(self.segments) + len(self.clips) + len(self.snapshots)


class Retention:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        data_dir: Path,
        *,
        snapshot_retain_days: float,
        min_free_mb: int,
        interval_s: float = 60.0,
        free_bytes: Callable[[Path], int] = disk_free,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.data_dir = Path(data_dir)
        self.snapshot_retain_days = snapshot_retain_days
        self.min_free = min_free_mb * MB
        self.interval_s = interval_s
        self.free_bytes = free_bytes
        self.now = now
        self.totals = {"segments": 0, "clips": 0, "snapshots": 0, "for_space": 0, "bytes": 0}
        self.low_disk = False
        self.last_sweep_at: float | None = None
        self.error: str | None = None
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None

    @classmethod
    def from_settings(cls, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> Retention:
        return cls(
            sessionmaker,
            settings.data_dir,
            snapshot_retain_days=settings.snapshot_retain_days,
            min_free_mb=settings.min_free_disk_mb,
            interval_s=settings.retention_interval_s,
        )

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        self._task = spawn(self._run(), name="argus.retention")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await cancel_and_wait(self._task)

    def kick(self) -> None:
        """Any thread: sweep now rather than at the next interval."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def space_ok(self) -> bool:
        """Writers, before each new file (any thread): is the floor met? If not, a sweep is started."""
        ok = self._free() >= self.min_free
        if not ok:
            self.kick()
        return ok

    def _free(self) -> int:
        try:
            return self.free_bytes(self.data_dir)
        except OSError:
            return 0

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
                self.error = None
            except Exception as exc:  # the next sweep tries again; health shows why meanwhile
                self.error = str(exc) or type(exc).__name__
                log.exception("retention sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()

    async def sweep(self) -> Deleted:
        """One pass: deleted cameras, then age, then the free-space floor."""
        retain = await self._retain_days()
        await self._purge_cameras(set(retain))
        await asyncio.to_thread(_drop_stale_exports, self.data_dir, self.now())
        old = await self._expired(retain)
        done = await asyncio.to_thread(_delete_all, old, self.data_dir)
        await self._forget(done)
        floor = Deleted()
        if self._free() < self.min_free:
            items = await self._inventory()
            floor = await asyncio.to_thread(self._delete_to_floor, items)
            await self._forget(floor)
        self.low_disk = self._free() < self.min_free
        self._count(done, floor)
        return _merge(done, floor)

    def _count(self, done: Deleted, floor: Deleted) -> None:
        for deleted, reason in ((done, "age"), (floor, "disk")):
            for kind in ("segments", "clips", "snapshots"):
                n = len(getattr(deleted, kind))
                self.totals[kind] += n
                if n:
                    MEDIA_DELETED.labels(kind, reason).inc(n)
            self.totals["bytes"] += deleted.bytes
        MEDIA_DISK_FREE.set(self._free())
        MEDIA_DISK_LOW.set(int(self.low_disk))
        self.totals["for_space"] += floor.count
        if floor.count:
            log.warning(
                "disk below %d MB free: deleted the %d oldest media files (%.0f MB)",
                self.min_free // MB,
                floor.count,
                floor.bytes / MB,
            )
        self.last_sweep_at = self.now()

    async def _retain_days(self) -> dict[int, float]:
        async with self.sessionmaker() as session:
            options = await CameraRepository(session).record_options()
        return {cid: float(record.get("retain_days", 7)) for cid, record in options.items()}

    async def _purge_cameras(self, known: set[int]) -> None:
        """The segments and clips of cameras that no longer exist (ids are never reused). A folder is
        deleted only if its camera is still absent when asked again (not one created meanwhile)."""
        folders = await asyncio.to_thread(_camera_folders, self.data_dir)
        gone = {cid for cid in folders if cid not in known}
        if not gone:
            return
        async with self.sessionmaker() as session:
            gone -= await CameraRepository(session).existing_ids(gone)
        for cid in gone:
            for folder in folders[cid]:
                await asyncio.to_thread(shutil.rmtree, folder, True)
                log.info("deleted %s of removed camera %s", folder.parent.name, cid)

    async def _expired(self, retain: dict[int, float]) -> list[Media]:
        now = self.now()
        oldest_allowed = now - min(retain.values(), default=0) * DAY  # nothing newer can have expired
        segments = await self._segments(before=oldest_allowed)
        items = [s for s in segments if s.at < now - retain.get(_camera_of(s), 0) * DAY]
        items += await asyncio.to_thread(self._expired_files, retain, now)
        return items

    def _expired_files(self, retain: dict[int, float], now: float) -> list[Media]:
        clips = [c for c in _clips(self.data_dir) if c.at < now - retain.get(_camera_of(c), 0) * DAY]
        cutoff = now - self.snapshot_retain_days * DAY
        return clips + [s for s in _snapshots(self.data_dir) if s.at < cutoff]

    async def _segments(self, before: float | None = None) -> list[Media]:
        """Finished segments (one being written is never deleted), oldest first; those started before
        `before` only, when given."""
        cutoff = None if before is None else datetime.fromtimestamp(before, UTC)
        async with self.sessionmaker() as session:
            rows = await RecordingRepository(session).finished(cutoff)
        return [Media("segments", at.timestamp(), [self.data_dir / p], rid) for rid, p, at in rows]

    async def _inventory(self) -> list[Media]:
        files = await asyncio.to_thread(lambda: [*_clips(self.data_dir), *_snapshots(self.data_dir)])
        return sorted([*await self._segments(), *files], key=lambda m: m.at)

    def _delete_to_floor(self, items: list[Media]) -> Deleted:
        deleted = Deleted()
        for item in items:
            if self._free() >= self.min_free:
                break
            deleted.add(item, self.data_dir)
        return deleted

    async def _forget(self, deleted: Deleted) -> None:
        """Rows follow files: segment rows go, events lose the clip or snapshot they no longer have."""
        if not deleted.count:
            return
        async with self.sessionmaker() as session, session.begin():
            for ids in _chunks(deleted.segments):
                await RecordingRepository(session).delete_ids(ids)
            for ids in _chunks(deleted.clips):
                await EventRepository(session).forget_clips(ids)
            for paths in _chunks(deleted.snapshots):
                await EventRepository(session).forget_snapshots(paths)

    def stats(self) -> dict[str, Any]:
        free = self._free()
        return {
            "free_mb": round(free / MB, 1),
            "min_free_mb": self.min_free // MB,
            "low_disk": self.low_disk,
            "deleted": dict(self.totals),
            "last_sweep_at": _iso(self.last_sweep_at),
            **({"error": self.error} if self.error else {}),
        }

    @property
    def write_error(self) -> str | None:
        """For /api/health: why media may not be written now."""
        if self.low_disk:
            return f"disk below its floor of {self.min_free // MB} MB free after deleting the oldest media"
        return self.error


def _camera_of(item: Media) -> int:
    """The camera id is the first folder under the media kind's root (every layout puts it there)."""
    parts = item.paths[0].parts
    for i, part in enumerate(parts[:-1]):
        if part in ("recordings", "clips", "snapshots") and parts[i + 1].isdigit():
            return int(parts[i + 1])
    return -1


def _clips(data_dir: Path) -> Iterator[Media]:
    """Each clip (all its parts), unless a part is still being written."""
    groups: dict[tuple[str, str], list[Path]] = {}
    writing: set[tuple[str, str]] = set()
    for path in (data_dir / CLIPS).glob("*/*.mp4*"):
        key = (path.parent.name, path.name.split(".", 1)[0])
        if path.name.endswith(WRITING):
            writing.add(key)
        elif path.name.endswith(".mp4"):
            groups.setdefault(key, []).append(path)
    for key, paths in groups.items():
        if key not in writing:
            at = max((_mtime(p) for p in paths), default=0.0)
            yield Media("clips", at, sorted(paths), key[1])


def _snapshots(data_dir: Path) -> Iterator[Media]:
    for path in (data_dir / SNAPSHOTS).glob("*/*/*.jpg"):
        yield Media("snapshots", _mtime(path), [path])


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _camera_folders(data_dir: Path) -> dict[int, list[Path]]:
    folders: dict[int, list[Path]] = {}
    for root in (data_dir / RECORDINGS, data_dir / CLIPS):
        for folder in root.glob("*") if root.is_dir() else ():
            if folder.is_dir() and folder.name.isdigit():
                folders.setdefault(int(folder.name), []).append(folder)
    return folders


def _drop_stale_exports(data_dir: Path, now: float) -> None:
    """An export lives while it is sent; one a crash left behind goes after an hour."""
    for path in (data_dir / EXPORTS).glob("*.mp4"):
        if _mtime(path) < now - 3600:
            path.unlink(missing_ok=True)


def _delete_all(items: list[Media], data_dir: Path) -> Deleted:
    deleted = Deleted()
    for item in items:
        deleted.add(item, data_dir)
    return deleted


def _merge(a: Deleted, b: Deleted) -> Deleted:
    return Deleted(a.segments + b.segments, a.clips + b.clips, a.snapshots + b.snapshots, a.bytes + b.bytes)


def _chunks(values: list[Any]) -> Iterator[list[Any]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat()
