"""The camera dialog shows the VAD's learned normality (picture + progress) and can reset it, in Chromium."""

from __future__ import annotations

import httpx
import pytest

from app.config import Settings
from tests.conftest import API_KEY, AUTH
from tests.support.media import media_path, write_video
from tests.support.waiting import eventually

pytestmark = pytest.mark.browser


async def test_camera_dialog_shows_normality_and_resets_it(
    page: object,
    server_url: str,
    settings: Settings,
) -> None:
    video = str(write_video(media_path(settings, "burst.avi"), seconds=6, motion=(1.0, 4.0)))
    async with httpx.AsyncClient(base_url=server_url, headers=AUTH) as http:
        cam = (await http.post("/api/cameras", json={"name": "Plaza", "url": video})).json()

        async def learned() -> bool:
            vad = (await http.get(f"/api/cameras/{cam['id']}/status")).json()["vad"]
            return vad is not None and vad["learned_s"] > 1

        await eventually(learned, 30)
        await page.goto(server_url + "/")  # type: ignore[attr-defined]
        await page.fill("#key-form input[name=key]", API_KEY)  # type: ignore[attr-defined]
        await page.click("#key-form button[type=submit]")  # type: ignore[attr-defined]
        await page.click(".tabs button[data-tab=cameras]")  # type: ignore[attr-defined]
        await page.click("#cameras-body button:text('Edit')")  # type: ignore[attr-defined]
        img = page.locator("#normality-png")  # type: ignore[attr-defined]
        await img.wait_for(state="visible", timeout=10_000)
        assert await img.evaluate("i => i.complete && i.naturalWidth") == 640
        assert "learned" in await page.locator("#normality-learning").text_content()  # type: ignore[attr-defined]

        before = (await http.get(f"/api/cameras/{cam['id']}/status")).json()["vad"]["learned_s"]
        await page.click("#normality-reset")  # type: ignore[attr-defined]
        await page.wait_for_selector(".toast:text('learning starts over')")  # type: ignore[attr-defined]
        vad = (await http.get(f"/api/cameras/{cam['id']}/status")).json()["vad"]
        assert vad["learned_s"] < before
        assert page.errors == []  # type: ignore[attr-defined]
