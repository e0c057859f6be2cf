"""Real video through the whole pipeline: motion burst -> exactly one stored anomaly event; static -> none."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from app.config import Settings
from tests.support.media import media_path, write_video
from tests.support.waiting import eventually


async def events_of(client: httpx.AsyncClient, camera_id: int) -> list[dict]:  # type: ignore[type-arg]
    r = await client.get("/api/events", params={"camera_id": camera_id, "type": "anomaly"})
    assert r.status_code == 200
    return r.json()["items"]  # type: ignore[no-any-return]


async def has_analysed(client: httpx.AsyncClient, camera_id: int, frames: int) -> bool:
    status = (await client.get(f"/api/cameras/{camera_id}/status")).json()
    return int(status["frames_analyzed"]) >= frames


async def test_motion_burst_raises_one_event(app_client: httpx.AsyncClient, settings: Settings) -> None:
    # given: 6 s static, a 2-s object crossing, 6 s static again (the file loops; we stop after one pass)
    clip = write_video(media_path(settings, "burst.avi"), seconds=14, motion=(6.0, 8.0))
    cam = (await app_client.post("/api/cameras", json={"name": "burst", "url": str(clip)})).json()

    # when: the burst has passed and the score has settled (analysed frames cover ~12 s of video)
    await eventually(lambda: has_analysed(app_client, cam["id"], 60), 40)
    await app_client.patch(f"/api/cameras/{cam['id']}", json={"enabled": False})  # closes open episodes

    # then: one episode, opened during the burst, closed, with a snapshot on disk
    async def closed_events() -> list[dict]:  # type: ignore[type-arg]
        events = await events_of(app_client, cam["id"])
        return events if events and events[0]["ended_at"] is not None else []

    events = await eventually(closed_events, 20)
    assert len(events) == 1, events
    event = events[0]
    assert event["ended_at"] is not None
    assert event["severity"] in {"low", "medium", "high", "critical"}
    snap = await app_client.get(f"/api/events/{event['id']}/snapshot.jpg")
    assert snap.status_code == 200
    assert snap.content[:2] == b"\xff\xd8"


async def test_static_scene_raises_nothing(
    running_app: FastAPI, app_client: httpx.AsyncClient, settings: Settings
) -> None:
    clip = write_video(media_path(settings, "static.avi"), seconds=10)
    cam = (await app_client.post("/api/cameras", json={"name": "static", "url": str(clip)})).json()

    # when: the VAD has really scored 40+ frames of the static scene
    async def analysed() -> dict[str, Any] | None:
        status = (await app_client.get(f"/api/cameras/{cam['id']}/status")).json()
        return status if int(status["frames_analyzed"]) >= 40 else None

    status = await eventually(analysed, 40)
    assert "vad" in status["analyzers"], status
    await app_client.patch(f"/api/cameras/{cam['id']}", json={"enabled": False})  # closes open episodes
    # and whatever the pipeline published has been written (no waiting on the flush interval)
    event_logger = running_app.state.runtime.event_logger
    await event_logger.flush()
    assert event_logger.stats()["buffered"] == 0

    # then: no event was stored for it
    assert await events_of(app_client, cam["id"]) == []
