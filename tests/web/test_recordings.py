"""The Recordings tab in a real headless Chromium: a camera's segments for an hour are listed, and both a
segment and the hour's export actually play (currentTime advances) in the page's <video>."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.kit.db import create_engine, create_sessionmaker
from app.models import Recording
from app.recording.segments import SegmentClosed, SegmentEvent, SegmentWriter
from app.stream.packets import PacketRing
from tests.conftest import API_KEY, AUTH
from tests.support.media import media_path, write_video
from tests.support.segment_media import feed, make_h264, packets
from tests.support.waiting import eventually

pytestmark = pytest.mark.browser
FPS = 15


def record(data_dir: Path, camera_id: int, base: float, tmp: Path) -> list[SegmentClosed]:
    """8 s of real H.264 recorded as four 2-s segments into DATA_DIR, as the recorder writes them."""
    clip = make_h264(tmp / "bar.mkv", seconds=8, fps=FPS, gop=FPS, size=(320, 240))
    events: list[SegmentEvent] = []
    ring = PacketRing(camera_id)
    writer = SegmentWriter(camera_id, ring, data_dir, 2.0, events.append)
    writer.start()
    assert writer.tapped.wait(5)
    feed(ring, list(packets(clip, camera_id=camera_id, base=base)))
    writer.stop()
    return [e for e in events if isinstance(e, SegmentClosed)]


async def index(settings: Settings, segments: list[SegmentClosed]) -> None:
    engine = create_engine(settings.database_url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            for s in segments:
                started, ended = (datetime.fromtimestamp(t, UTC) for t in (s.started_at, s.ended_at))
                session.add(
                    Recording(
                        camera_id=s.camera_id,
                        path=s.path,
                        started_at=started,
                        ended_at=ended,
                        bytes=s.bytes,
                        complete=True,
                    )
                )
    finally:
        await engine.dispose()


async def wait_playing(page: object, minimum: float = 0.5, timeout: float = 15.0) -> dict[str, float]:
    state: dict[str, float] = {}

    async def playing() -> dict[str, float] | None:
        nonlocal state
        state = await page.evaluate(  # type: ignore[attr-defined]
            "() => { const v = document.getElementById('rec-player');"
            " return {t: v.currentTime, d: v.duration, w: v.videoWidth, err: v.error ? v.error.code : 0}; }"
        )
        return state if state["t"] >= minimum else None

    return await eventually(  # type: ignore[return-value]
        playing, timeout, interval=0.1, what=lambda: f"the video playing ({state})"
    )


async def test_a_cameras_hour_is_listed_and_its_segments_and_export_play(
    page: object, server_url: str, settings: Settings, tmp_path: Path
) -> None:
    video = write_video(media_path(settings, "yard.avi"), seconds=4)
    async with httpx.AsyncClient(base_url=server_url, headers=AUTH) as http:
        camera = (await http.post("/api/cameras", json={"name": "Yard", "url": str(video)})).json()
    hour = (time.time() // 3600 - 2) * 3600  # two hours ago, on the hour
    segments = await asyncio.to_thread(record, settings.data_dir, camera["id"], hour + 600, tmp_path)
    await index(settings, segments)

    await page.goto(server_url + "/#recordings")  # type: ignore[attr-defined]
    await page.fill("#key-form input[name=key]", API_KEY)  # type: ignore[attr-defined]
    await page.click("#key-form button[type=submit]")  # type: ignore[attr-defined]
    await page.click(".tabs button[data-tab=recordings]")  # type: ignore[attr-defined]
    await page.wait_for_selector("#rec-camera option", state="attached")  # type: ignore[attr-defined]
    await page.evaluate(  # type: ignore[attr-defined]
        """(ms) => { const d = new Date(ms), p = (n) => String(n).padStart(2, '0');
        const input = document.getElementById('rec-hour');
        input.value = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:00`;
        input.dispatchEvent(new Event('change')); }""",
        hour * 1000,
    )
    rows = page.locator(".rec-segment")  # type: ignore[attr-defined]
    await rows.nth(3).wait_for(state="visible", timeout=10_000)
    assert await rows.count() == 4

    await rows.nth(1).locator("button").click()
    state = await wait_playing(page)
    assert state["d"] == pytest.approx(2.0, abs=0.1) and state["w"] == 320 and state["err"] == 0

    await page.click("#rec-export")  # type: ignore[attr-defined]
    await page.wait_for_function(  # type: ignore[attr-defined]
        "() => (document.getElementById('rec-player').dataset.source || '').includes('export.mp4')"
    )
    state = await wait_playing(page, minimum=0.0001)
    await page.wait_for_function("() => document.getElementById('rec-player').duration > 7")  # type: ignore[attr-defined]
    state = await wait_playing(page, minimum=state["t"] + 0.5)
    assert state["d"] == pytest.approx(8.0, abs=0.1) and state["err"] == 0
    assert page.errors == []  # type: ignore[attr-defined]
