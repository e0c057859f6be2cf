"""Retention on real files and a real database: age, deleted cameras and the free-space floor delete
exactly what they should (the floor is driven through the injectable free-space function)."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.kit.db import create_engine, create_sessionmaker
from app.metrics import REGISTRY
from app.migrate import upgrade_async
from app.models import Camera, Event, Recording
from app.recording.retention import MB, Retention

NOW = time.time()
HOUR, DAY = 3600.0, 86_400.0


@pytest.fixture
async def db(db_settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A migrated database of each kind (SQLite file, the session's PostgreSQL emptied)."""
    url = db_settings.database_url
    if db_settings.is_sqlite:
        await upgrade_async(url)
    engine = create_engine(url)
    yield create_sessionmaker(engine)
    await engine.dispose()


class Media:
    """Files under DATA_DIR, each `size` bytes, with their rows: what a running Argus leaves behind."""

    def __init__(self, root: Path, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.root = root
        self.sessionmaker = sessionmaker

    def file(self, rel: str, age_s: float, size: int = 1000) -> str:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * size)
        os.utime(path, (NOW - age_s, NOW - age_s))
        return rel

    async def camera(self, camera_id: int, retain_days: float) -> None:
        async with self.sessionmaker() as session, session.begin():
            record = {"mode": "continuous", "retain_days": retain_days}
            session.add(Camera(id=camera_id, name=f"cam{camera_id}", url="rtsp://x/y", record=record))

    async def segment(self, camera_id: int, age_s: float, complete: bool = True, size: int = 1000) -> str:
        start = NOW - age_s
        rel = self.file(f"media/recordings/{camera_id}/d/{start:.0f}.mp4", age_s, size)
        async with self.sessionmaker() as session, session.begin():
            session.add(
                Recording(
                    camera_id=camera_id,
                    path=rel,
                    started_at=datetime.fromtimestamp(start, UTC),
                    ended_at=datetime.fromtimestamp(start + 60, UTC) if complete else None,
                    bytes=size,
                    complete=complete,
                )
            )
        return rel

    async def event(
        self, event_id: str, camera_id: int, clip: str | None = None, snapshot: str | None = None
    ) -> None:
        async with self.sessionmaker() as session, session.begin():
            session.add(
                Event(
                    id=event_id,
                    camera_id=camera_id,
                    type="motion",
                    severity="low",
                    started_at=datetime.fromtimestamp(NOW - DAY, UTC),
                    clip_path=clip,
                    clip_parts=1 if clip else 0,
                    snapshot_path=snapshot,
                )
            )

    def files(self) -> set[str]:
        return {p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()}

    async def segment_paths(self) -> set[str]:
        async with self.sessionmaker() as session:
            return set((await session.execute(select(Recording.path))).scalars())

    async def event_media(self) -> dict[str, tuple[str | None, str | None]]:
        async with self.sessionmaker() as session:
            rows = await session.execute(select(Event.id, Event.clip_path, Event.snapshot_path))
            return {i: (c, s) for i, c, s in rows}


@pytest.fixture
def media(tmp_path: Path, db: async_sessionmaker[AsyncSession]) -> Media:
    (tmp_path / "dd").mkdir()
    return Media(tmp_path / "dd", db)


def retention(media: Media, *, min_free_mb: int = 0, free: int = 10**12) -> Retention:
    return Retention(
        media.sessionmaker,
        media.root,
        snapshot_retain_days=30,
        min_free_mb=min_free_mb,
        free_bytes=lambda _: free,
        now=lambda: NOW,
    )


async def test_age_and_deleted_cameras_delete_exactly_what_they_should(media: Media) -> None:
    await media.camera(1, retain_days=7)
    await media.camera(2, retain_days=1)
    old_segment = await media.segment(1, age_s=8 * DAY)
    kept_segment = await media.segment(1, age_s=6 * DAY)
    writing = await media.segment(1, age_s=9 * DAY, complete=False)  # never touched while written
    short_lived = await media.segment(2, age_s=2 * DAY)
    recent = await media.segment(2, age_s=HOUR)
    old_clip = [
        media.file("media/clips/1/ev-old.mp4", 8 * DAY),
        media.file("media/clips/1/ev-old.2.mp4", 8 * DAY),
    ]
    new_clip = media.file("media/clips/1/ev-new.mp4", 2 * DAY)
    busy_clip = media.file("media/clips/1/ev-busy.mp4", 9 * DAY)
    busy_marker = media.file("media/clips/1/ev-busy.mp4.writing", 9 * DAY)
    old_snap = media.file("snapshots/1/2026-10-01/ev-old.jpg", 31 * DAY)
    new_snap = media.file("snapshots/1/2026-11-20/ev-new.jpg", 29 * DAY)
    await media.event("ev-old", 1, clip=old_clip[0], snapshot=old_snap)
    await media.event("ev-new", 1, clip=new_clip, snapshot=new_snap)
    gone = [media.file("media/recordings/3/d/1.mp4", HOUR), media.file("media/clips/3/ev-x.mp4", HOUR)]
    others = [
        media.file("media/input.mp4", 400 * DAY),  # a camera's source video (ARGUS_MEDIA_DIR)
        media.file("models/vad.onnx", 400 * DAY),
        media.file("media/recordings/notes.txt", 400 * DAY),
    ]
    before = media.files()

    deleted = await retention(media).sweep()

    removed = {old_segment, short_lived, *old_clip, old_snap, *gone}
    assert media.files() == before - removed
    assert {
        kept_segment,
        writing,
        recent,
        new_clip,
        busy_clip,
        busy_marker,
        new_snap,
        *others,
    } <= media.files()
    assert await media.segment_paths() == {kept_segment, writing, recent}
    assert await media.event_media() == {"ev-old": (None, None), "ev-new": (new_clip, new_snap)}
    assert len(deleted.segments) == 2 and deleted.clips == ["ev-old"] and deleted.snapshots == [old_snap]


async def test_below_the_floor_the_oldest_media_goes_first_until_it_is_met(media: Media) -> None:
    await media.camera(1, retain_days=30)
    capacity = 10 * MB
    r = Retention(
        media.sessionmaker,
        media.root,
        snapshot_retain_days=30,
        min_free_mb=7,
        free_bytes=lambda _: capacity - sum(p.stat().st_size for p in media.root.rglob("*.*")),
        now=lambda: NOW,
    )
    oldest = await media.segment(1, age_s=5 * HOUR, size=MB)
    snap = media.file("snapshots/1/d/ev-a.jpg", 4 * HOUR, size=MB)
    clip = media.file("media/clips/1/ev-b.mp4", 3 * HOUR, size=MB)
    newer_segment = await media.segment(1, age_s=2 * HOUR, size=MB)
    newest_snap = media.file("snapshots/1/d/ev-c.jpg", HOUR, size=MB)
    writing = await media.segment(1, age_s=9 * HOUR, complete=False)
    assert not r.space_ok()  # just under 5 MB free < 7 MB
    labels = {"kind": "clips", "reason": "disk"}
    clips_deleted = REGISTRY.get_sample_value("argus_media_deleted_total", labels) or 0

    await r.sweep()

    # just over 2 MB had to go to reach 7 MB free: the three oldest of any kind, not the one being written
    assert media.files() == {newer_segment, newest_snap, writing}
    assert {oldest, snap, clip}.isdisjoint(media.files())
    assert await media.segment_paths() == {newer_segment, writing}
    assert r.space_ok() and not r.low_disk and r.write_error is None
    assert r.stats()["deleted"] == {
        "segments": 1,
        "clips": 1,
        "snapshots": 1,
        "for_space": 3,
        "bytes": 3 * MB,
    }
    assert REGISTRY.get_sample_value("argus_media_deleted_total", labels) == clips_deleted + 1
    assert REGISTRY.get_sample_value("argus_media_disk_low") == 0


async def test_a_floor_that_cannot_be_met_is_reported_and_stops_new_files(media: Media) -> None:
    await media.camera(1, retain_days=30)
    writing = await media.segment(1, age_s=HOUR, complete=False)
    done = await media.segment(1, age_s=2 * HOUR)
    r = retention(media, min_free_mb=100, free=MB)
    await r.sweep()
    assert media.files() == {writing} and done not in await media.segment_paths()
    assert r.low_disk and not r.space_ok()
    assert "below its floor of 100 MB" in (r.write_error or "")
    assert r.stats()["low_disk"] is True and r.stats()["free_mb"] == 1.0
