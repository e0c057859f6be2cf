"""keyframe_burst end to end: keyframes only while calm, every frame while an event is open."""

from __future__ import annotations

import asyncio

import httpx

from tests.support.rtsp import RtspServer
from tests.support.waiting import eventually


async def status(api: httpx.AsyncClient, camera_id: int) -> dict:  # type: ignore[type-arg]
    return (await api.get(f"/api/cameras/{camera_id}/status")).json()  # type: ignore[no-any-return]


async def test_calm_keyframes_then_burst_while_the_event_is_open(
    rtsp_factory: type[RtspServer], app_client: httpx.AsyncClient
) -> None:
    # given: a still scene (keyframe every 30 frames at 15 FPS) analysed with keyframe_burst
    server = rtsp_factory(mounts=1, width=320, height=240, fps=15, source="smpte")
    server.start()
    body = {"name": "kb", "url": server.url(), "drop_policy": "keyframe_burst", "vad": {"warmup_frames": 5}}
    cam = (await app_client.post("/api/cameras", json=body)).json()

    async def warmed() -> dict | None:  # type: ignore[type-arg]
        s = await status(app_client, cam["id"])
        return s if s["frames_analyzed"] >= 8 else None

    calm = await eventually(warmed, 60)
    # then: while calm, about one frame in 30 is analysed; the rest are decoded but never converted
    assert calm["frames_dropped"].get("not_sampled", 0) >= 15 * calm["frames_analyzed"]

    # when: the scene starts moving, an anomaly event opens and the camera switches to burst mode
    server.switch("ball")

    async def event_open() -> bool:
        r = await app_client.get("/api/events", params={"camera_id": cam["id"], "type": "anomaly"})
        return bool(r.json()["items"])

    await eventually(event_open, 60)
    before = (await status(app_client, cam["id"]))["frames_analyzed"]
    await asyncio.sleep(3)  # a measurement window, not synchronisation: calm mode would analyse <= 2 frames
    after = (await status(app_client, cam["id"]))["frames_analyzed"]
    assert after - before >= 6, (before, after)
