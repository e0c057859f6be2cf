"""A first start with many cameras: the built-in VAD is loaded once and calibrated once for all of them."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.conftest import AUTH
from tests.support.media import media_path, write_video
from tests.support.waiting import eventually

CAMERAS = 8


async def vad_stats(client: httpx.AsyncClient) -> dict[str, Any]:
    (vad,) = [m for m in (await client.get("/api/models")).json() if m["name"] == "vad-motion"]
    return vad


async def serving_all(client: httpx.AsyncClient, ids: list[int]) -> dict[str, Any] | None:
    """The VAD's stats once it is loaded and every camera runs (a frame whose analyzer waited on the load
    and missed its budget counts as analysed, so camera status alone does not say the model is there)."""
    statuses = [(await client.get(f"/api/cameras/{i}/status")).json() for i in ids]
    vad = await vad_stats(client)
    return vad if vad["loaded"] and all(s["frames_analyzed"] > 3 for s in statuses) else None


def count(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(1 for r in caplog.records if r.getMessage().startswith(text))


async def test_cameras_starting_at_once_share_one_load_and_one_calibration(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="argus.inference")
    # a per-frame budget far shorter than load + calibration: frames give up on the model while it loads
    settings = settings.model_copy(update={"analyzer_budget_ms": 5.0})
    clip = str(write_video(media_path(settings, "scene.avi"), seconds=6, motion=(1, 5)))
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://argus", headers=AUTH) as client:
            # when eight cameras are added at the same moment on a pool that has loaded nothing yet
            posts = await asyncio.gather(
                *(
                    client.post("/api/cameras", json={"name": f"cam{i}", "url": clip, "decode": "all"})
                    for i in range(CAMERAS)
                )
            )
            ids = [r.json()["id"] for r in posts]
            vad = await eventually(lambda: serving_all(client, ids), timeout=60)
    # then the model was loaded and calibrated once, and /api/models says so
    assert vad["loads"] == 1 and vad["loaded"] is True
    assert count(caplog, "model vad-motion loaded") == 1
    assert count(caplog, "model vad-motion calibrated") == 1
    assert len(vad["cameras"]) == CAMERAS

    # and on the next start, where every stored camera starts at once, the same holds
    caplog.clear()
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://argus", headers=AUTH) as client:
            vad = await eventually(lambda: serving_all(client, ids), timeout=60)
    assert vad["loads"] == 1
    assert count(caplog, "model vad-motion loaded") == 1
    assert count(caplog, "model vad-motion calibrated") == 1
