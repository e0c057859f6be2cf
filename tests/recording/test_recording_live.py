"""Continuous recording from a real running camera (the app's StreamSource demuxing an H.264 file at its
native rate): segments are contiguous while the stream is up and an export across three of them plays
for their whole span."""

from __future__ import annotations

import asyncio
import io
import itertools
from datetime import datetime
from pathlib import Path

import av
import httpx
import pytest

from app.config import Settings
from tests.conftest import make_settings
from tests.support.media import media_path
from tests.support.segment_media import make_h264
from tests.support.waiting import eventually

FPS, GOP_S = 15, 1.0


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data", segment_s=2.0)


async def test_a_live_camera_records_contiguous_segments_and_exports_them(
    app_client: httpx.AsyncClient, settings: Settings
) -> None:
    video = make_h264(media_path(settings, "yard.mkv"), seconds=30, fps=FPS, gop=int(GOP_S * FPS))
    body = {"name": "Yard", "url": str(video), "record": {"mode": "events", "retain_days": 1}}
    camera = (await app_client.post("/api/cameras", json=body)).json()
    url = f"/api/cameras/{camera['id']}/recordings"
    await asyncio.sleep(2.5)  # streaming, but not recorded: events mode keeps clips only
    assert (await app_client.get(url)).json() == []
    patch = {"record": {"mode": "continuous", "retain_days": 1}}  # recording starts without a restart
    assert (await app_client.patch(f"/api/cameras/{camera['id']}", json=patch)).status_code == 200

    async def four_finished() -> list[dict[str, object]] | None:
        rows = [r for r in (await app_client.get(url)).json() if r["complete"]]
        return rows if len(rows) >= 4 else None

    rows = (await eventually(four_finished, timeout=40))[:4]
    starts = [datetime.fromisoformat(str(r["started_at"])) for r in rows]
    ends = [datetime.fromisoformat(str(r["ended_at"])) for r in rows]
    for (end, _), (_, start) in itertools.pairwise(zip(ends, starts, strict=True)):
        assert 0 <= (start - end).total_seconds() <= GOP_S  # no gap beyond one GOP across a boundary
    for r in rows:
        with av.open(io.BytesIO((await app_client.get(str(r["url"]))).content)) as inp:
            first = next(inp.decode(video=0))
            assert first.key_frame and first.time == 0.0

    span = {"since": rows[1]["started_at"], "until": rows[3]["ended_at"]}
    export = await app_client.get(f"/api/cameras/{camera['id']}/export.mp4", params=span)
    assert export.status_code == 200, export.text
    with av.open(io.BytesIO(export.content)) as inp:
        frames = [f for f in inp.decode(video=0)]
        duration = float(inp.duration) / av.time_base
    expected = (ends[3] - starts[1]).total_seconds()
    assert duration == pytest.approx(expected, abs=0.15)
    assert len(frames) == pytest.approx(expected * FPS, abs=2) and frames[0].key_frame
