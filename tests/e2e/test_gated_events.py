"""Decoding only on activity changes no verdict: `gated` raises the events `all` raises, on real footage.

Both cameras watch the same shared RTSP mount (one media, one timeline: the same frame reaches both at
the same moment), so their event start times can be compared directly.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.support.footage import footage_clip
from tests.support.rtsp import RtspServer
from tests.support.waiting import eventually

pytestmark = [pytest.mark.rtsp, pytest.mark.slow]


async def status(client: httpx.AsyncClient, camera_id: int) -> dict:  # type: ignore[type-arg]
    return (await client.get(f"/api/cameras/{camera_id}/status")).json()  # type: ignore[no-any-return]


async def anomalies(client: httpx.AsyncClient, camera_id: int) -> list[dict]:  # type: ignore[type-arg]
    r = await client.get("/api/events", params={"camera_id": camera_id, "type": "anomaly"})
    return sorted(r.json()["items"], key=lambda e: e["started_at"])  # type: ignore[no-any-return]


async def test_gated_camera_raises_the_events_of_a_decode_all_camera(
    app_client: httpx.AsyncClient, rtsp_factory: type[RtspServer], tmp_path: Path
) -> None:
    # given real footage: a still street for 14 s (the VAD warms up on 25 analysed frames: 5 s at 5 fps,
    # 7 s at the 3.5 fps a loaded 2-core CI runner manages, plus a late joiner's connect), pedestrians
    # for 5 s, still again for 8 s
    clip = footage_clip(tmp_path, still_s=14, motion_s=5, tail_still_s=8, width=640)
    server = rtsp_factory(mounts=1, source=str(clip.path))
    server.start()
    ids = {}
    for decode in ("all", "gated"):
        body = {"name": f"street-{decode}", "url": server.url(1), "decode": decode}
        r = await app_client.post("/api/cameras", json=body)
        assert r.status_code == 201, r.text
        ids[decode] = r.json()["id"]

    # when both have watched the whole clip
    async def both_streaming() -> bool:
        states = [await status(app_client, i) for i in ids.values()]
        return all(s["state"] == "streaming" for s in states)

    await eventually(both_streaming, 20)
    await asyncio.sleep(clip.duration_s - 1)
    gated = await status(app_client, ids["gated"])
    for camera_id in ids.values():
        await app_client.patch(f"/api/cameras/{camera_id}", json={"enabled": False})

    # then the gated camera decoded far less while the street was still...
    assert gated["frames_dropped"].get("not_decoded", 0) > 0
    assert gated["decode"] == "gated"

    # ...and raised the same episodes, each starting within one GOP of its decode-all twin
    async def closed(camera_id: int) -> list[dict]:  # type: ignore[type-arg]
        events = await anomalies(app_client, camera_id)
        return events if events and all(e["ended_at"] for e in events) else []

    reference = await eventually(lambda: closed(ids["all"]), 20)
    candidate = await eventually(lambda: closed(ids["gated"]), 20)
    assert len(candidate) == len(reference), (reference, candidate)
    for a, b in zip(reference, candidate, strict=True):
        delta = abs(datetime.fromisoformat(a["started_at"]) - datetime.fromisoformat(b["started_at"]))
        assert delta.total_seconds() <= clip.gop_s, (a["started_at"], b["started_at"])
