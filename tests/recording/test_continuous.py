"""Recorder: a writer per continuous camera, the recordings index kept from its segments, and a start
after a crash that finishes or discards what was left half-written (nothing unreadable stays listed)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.kit.db import create_engine, create_sessionmaker
from app.migrate import upgrade_async
from app.models import Camera, Recording
from app.recording.continuous import Recorder, recover
from app.stream.packets import PacketRing
from tests.support.segment_media import decoded_frames, feed, make_h264, packets
from tests.support.waiting import eventually

FPS = 15


@pytest.fixture
async def db(db_settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A migrated database of each kind (SQLite file, the session's PostgreSQL emptied)."""
    url = db_settings.database_url
    if db_settings.is_sqlite:
        await upgrade_async(url)
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker() as session, session.begin():
        session.add(Camera(id=1, name="dock", url="rtsp://x/y", record={"mode": "continuous"}))
    yield sessionmaker
    await engine.dispose()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_h264(tmp_path_factory.mktemp("media") / "bar.mkv", seconds=8, fps=FPS, gop=FPS)


async def rows(sessionmaker: async_sessionmaker[AsyncSession]) -> list[Recording]:
    async with sessionmaker() as session:
        return list((await session.execute(select(Recording).order_by(Recording.started_at))).scalars())


async def started(recorder: Recorder, camera_id: int) -> None:
    def tapped() -> bool:
        writer = recorder.writers.get(camera_id)
        return writer is not None and writer.tapped.is_set()

    await eventually(tapped, 2, interval=0.01, what="a writer tapping the ring")


async def test_segments_are_indexed_contiguous_and_finished_when_the_camera_stops(
    db: async_sessionmaker[AsyncSession], clip: Path, tmp_path: Path
) -> None:
    ring = PacketRing(1)
    wanted = {1: ring}
    gone: list[bool] = []
    async with Recorder(
        db, tmp_path, 2.0, lambda: wanted, on_cameras_gone=lambda: gone.append(True), poll_s=0.02
    ) as rec:
        await started(rec, 1)
        await asyncio.to_thread(feed, ring, list(packets(clip)))
        wanted.clear()  # the camera stops (or leaves continuous mode): its open segment is finished

        async def finished() -> bool:
            return (
                1 not in rec.writers and len(await rows(db)) == 4 and all(r.complete for r in await rows(db))
            )

        await eventually(finished, 4, interval=0.02, what="four complete segments, the writer gone")
        assert gone == [True]
    segments = await rows(db)
    assert [r.complete for r in segments] == [True] * 4
    for before, after in itertools.pairwise(segments):
        assert after.started_at == before.ended_at  # no gap: the boundary keyframe opens the next
    assert segments[-1].ended_at is not None
    assert (segments[-1].ended_at - segments[0].started_at).total_seconds() == pytest.approx(8.0, abs=0.1)
    for row in segments:
        assert row.bytes == (tmp_path / row.path).stat().st_size
        assert decoded_frames(tmp_path / row.path)[0] == (0.0, True)


async def test_a_restart_finishes_or_discards_what_a_crash_left(
    db: async_sessionmaker[AsyncSession], clip: Path, tmp_path: Path
) -> None:
    async with Recorder(db, tmp_path, 60.0, lambda: {}) as rec:
        ring = PacketRing(1)
        rec.targets = lambda: {1: ring}
        await started(rec, 1)
        await asyncio.to_thread(feed, ring, list(packets(clip)))
    (good,) = await rows(db)
    whole = (tmp_path / good.path).read_bytes()

    def add(name: str, data: bytes | None) -> str:
        rel = f"media/recordings/1/2027-01-15/{name}.mp4"
        if data is not None:
            (tmp_path / rel).write_bytes(data)
        return rel

    torn = add("torn", whole[: len(whole) * 2 // 3])  # killed mid-fragment
    empty = add("empty", whole[:200])  # killed before the first fragment
    lost = add("lost", None)  # a row whose file went
    add("stray", whole)  # a file that is not a segment of ours
    orphan = "media/recordings/1/2027-01-15/09-30-00.250.mp4"  # a segment whose row never came
    (tmp_path / orphan).write_bytes(whole)
    add("23-00-00.000", whole[:200])  # the same, unplayable
    async with db() as session, session.begin():
        at = datetime(2027, 1, 15, tzinfo=UTC)
        for rel, complete in ((torn, False), (empty, False), (lost, True)):
            session.add(Recording(camera_id=1, path=rel, started_at=at, bytes=0, complete=complete))

    await recover(db, tmp_path)

    kept = {r.path: r for r in await rows(db)}
    assert set(kept) == {good.path, torn, orphan}
    assert kept[orphan].complete and kept[orphan].bytes == len(whole)
    assert kept[orphan].started_at == datetime(2027, 1, 15, 9, 30, 0, 250_000, tzinfo=UTC)
    assert kept[orphan].ended_at is not None
    assert (kept[orphan].ended_at - kept[orphan].started_at).total_seconds() == pytest.approx(8.0, abs=0.01)
    assert kept[torn].complete and kept[torn].ended_at is not None
    duration = (kept[torn].ended_at - kept[torn].started_at).total_seconds()
    assert 2.0 <= duration < 8.0
    assert len(decoded_frames(tmp_path / torn)) == round(duration * FPS)
    assert kept[torn].bytes == (tmp_path / torn).stat().st_size
    files = {p.relative_to(tmp_path).as_posix() for p in (tmp_path / "media").rglob("*") if p.is_file()}
    assert files == {good.path, torn, orphan}
    assert kept[good.path].bytes == len(whole)
