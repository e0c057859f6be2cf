"""Recordings through the API, on SQLite and PostgreSQL: the app's Recorder writes segments from a packet
ring (fed as the demux thread would), lists them, serves them, exports a span across three of them, and
deletes them with their camera. /api/health reports the disk floor."""

from __future__ import annotations

import asyncio
import io
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import httpx
import pytest
from fastapi import FastAPI

from app.metrics import REGISTRY
from app.recording.continuous import Recorder
from app.stream.packets import PacketRing
from tests.support.segment_media import feed, make_h264, packets
from tests.support.waiting import eventually

FPS = 15


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_h264(tmp_path_factory.mktemp("media") / "bar.mkv", seconds=8, fps=FPS, gop=FPS)


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


async def record(
    app: FastAPI, api_client: httpx.AsyncClient, camera_id: int, clip: Path, base: float
) -> None:
    """8 s of video through the app's recorder as four 2-s segments; returns when all four are indexed."""
    recorder: Recorder = app.state.runtime.recorder
    recorder.segment_s = 2.0
    ring = PacketRing(camera_id)
    recorder.targets = lambda: {camera_id: ring}
    await eventually(lambda: _tapped(recorder, camera_id), timeout=10, interval=0.02)
    await asyncio.to_thread(feed, ring, list(packets(clip, camera_id=camera_id, base=base)))
    recorder.targets = dict  # the camera leaves continuous mode: its open segment is finished

    async def four_done() -> bool:
        rows = (await api_client.get(f"/api/cameras/{camera_id}/recordings", params=_span(base))).json()
        return len(rows) == 4 and all(r["complete"] for r in rows)

    await eventually(four_done, timeout=15)


async def _tapped(recorder: Recorder, camera_id: int) -> bool:
    writer = recorder.writers.get(camera_id)
    return writer is not None and writer.tapped.is_set()


def _span(base: float) -> dict[str, str]:
    return {"since": iso(base - 60), "until": iso(base + 60)}


async def add_camera(api_client: httpx.AsyncClient) -> int:
    body = {
        "name": "Yard",
        "url": "rtsp://127.0.0.1:9/none",
        "record": {"mode": "continuous", "retain_days": 3},
    }
    response = await api_client.post("/api/cameras", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def test_segments_are_listed_served_exported_and_deleted_with_their_camera(
    api_app: FastAPI, api_client: httpx.AsyncClient, clip: Path
) -> None:
    data_dir = api_app.state.runtime.settings.data_dir
    camera_id = await add_camera(api_client)
    base = time.time() - 120
    counted = REGISTRY.get_sample_value("argus_recording_segments_total", {"camera": str(camera_id)}) or 0
    await record(api_app, api_client, camera_id, clip, base)

    rows = (await api_client.get(f"/api/cameras/{camera_id}/recordings", params=_span(base))).json()
    starts = [datetime.fromisoformat(r["started_at"]) for r in rows]
    ends = [datetime.fromisoformat(r["ended_at"]) for r in rows]
    assert starts == sorted(starts) and starts[0].timestamp() == pytest.approx(base, abs=0.001)
    for before_end, next_start in zip(ends, starts[1:], strict=False):
        assert next_start == before_end  # contiguous: no gap at all across a boundary
    assert [round((e - s).total_seconds(), 2) for s, e in zip(starts, ends, strict=True)][:3] == [2.0] * 3

    metrics = (await api_client.get("/metrics")).text
    assert f'argus_recording_segments_total{{camera="{camera_id}"}} {counted + 4}' in metrics

    # one segment, whole and by range
    segment = await api_client.get(rows[1]["url"])
    assert segment.status_code == 200 and segment.headers["content-type"] == "video/mp4"
    assert len(segment.content) == rows[1]["bytes"]
    part = await api_client.get(rows[1]["url"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == segment.content[:100]

    # the span of the first three segments, as one MP4
    span = {"since": rows[0]["started_at"], "until": rows[2]["ended_at"]}
    export = await api_client.get(f"/api/cameras/{camera_id}/export.mp4", params=span)
    assert export.status_code == 200 and export.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(export.content)) as inp:
        frames = [f.time for f in inp.decode(video=0)]
        duration = float(inp.duration) / av.time_base
    assert len(frames) == 6 * FPS and frames[0] == 0.0
    assert duration == pytest.approx(6.0, abs=0.07)
    assert not list((data_dir / "media" / "exports").glob("*.mp4"))  # an export lives while it is sent

    files = [data_dir / p for p in (data_dir / "media" / "recordings").rglob("*.mp4")]
    assert len(files) == 4
    assert (await api_client.delete(f"/api/cameras/{camera_id}")).status_code == 204
    assert (await api_client.get(f"/api/cameras/{camera_id}/recordings")).status_code == 404

    async def files_gone() -> bool:
        return not any(f.exists() for f in files)

    await eventually(files_gone, timeout=10)


async def test_export_and_list_refuse_bad_spans_naming_the_field(api_client: httpx.AsyncClient) -> None:
    camera_id = await add_camera(api_client)
    now = datetime.now(UTC)
    url = f"/api/cameras/{camera_id}/export.mp4"
    cases = [
        ({"since": now.isoformat(), "until": (now + timedelta(hours=1, seconds=1)).isoformat()}, "until"),
        ({"since": now.isoformat(), "until": (now - timedelta(seconds=1)).isoformat()}, "until"),
        ({"until": now.isoformat()}, "since"),
        ({"since": "1700000000", "until": now.isoformat()}, "since"),
    ]
    for params, field in cases:
        response = await api_client.get(url, params=params)
        assert response.status_code == 422 and response.json()["field"] == field, (params, response.text)
    empty = {"since": (now - timedelta(minutes=5)).isoformat(), "until": now.isoformat()}
    assert (await api_client.get(url, params=empty)).status_code == 404
    assert (await api_client.get("/api/cameras/999999/export.mp4", params=empty)).status_code == 404
    assert (await api_client.get("/api/cameras/999999/recordings")).status_code == 404
    assert (await api_client.get(f"/api/cameras/{camera_id}/recordings")).json() == []
    assert (await api_client.get(f"/api/cameras/{camera_id}/recordings/12345.mp4")).status_code == 404
    assert (await api_client.get(f"/api/cameras/{camera_id}/recordings", params=empty)).status_code == 200


async def test_health_reports_a_disk_below_its_floor(api_app: FastAPI, api_client: httpx.AsyncClient) -> None:
    retention = api_app.state.runtime.retention
    body = (await api_client.get("/api/health")).json()
    assert body["storage"]["low_disk"] is False and body["storage"]["min_free_mb"] == 1024
    retention.min_free = 1 << 62  # a floor no disk meets
    await retention.sweep()
    body = (await api_client.get("/api/health")).json()
    assert body["status"] == "degraded" and body["storage"]["low_disk"] is True
    assert any(r.startswith("media storage failing: disk below its floor") for r in body["reasons"])
