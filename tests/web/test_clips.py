"""Event clips in a real headless Chromium: the live feed and the event list play an event's clip in a
<video> (currentTime advances); a live event's clip button appears once its clip exists."""

from __future__ import annotations

import httpx
import pytest

from app.config import Settings
from tests.conftest import API_KEY, AUTH
from tests.support.clip_media import real_h264
from tests.support.media import media_path
from tests.support.waiting import eventually

pytestmark = pytest.mark.browser


async def plays(page: object, video: str, minimum: float = 1.0, timeout: float = 20.0) -> float:
    """Wait until the <video> matched by `video` has played past `minimum` seconds; returns currentTime."""
    seen: dict[str, object] = {}

    async def played() -> float | None:
        nonlocal seen
        seen = await page.eval_on_selector(  # type: ignore[attr-defined]
            video,
            "v => ({t: v.currentTime, paused: v.paused, error: v.error && v.error.message, "
            "w: v.videoWidth, d: v.duration})",
        )
        assert not seen["error"], seen
        if float(seen["t"]) >= minimum:  # type: ignore[arg-type]
            assert seen["w"] == 384, seen  # decoded real frames, at the clip's size
            return float(seen["t"])  # type: ignore[arg-type]
        return None

    return await eventually(  # type: ignore[return-value]
        played, timeout, interval=0.2, what=lambda: f"the clip playing ({seen})"
    )


async def test_event_list_and_feed_play_an_events_clip(
    page: object, server_url: str, settings: Settings
) -> None:
    """The whole path: a camera streams real H.264, an event is raised, the app's recorder writes its clip
    from the camera's ring, and the dashboard plays it (live feed first, then the event list)."""
    footage = real_h264(media_path(settings, "yard.mkv"), seconds=40)
    async with httpx.AsyncClient(base_url=server_url, headers=AUTH) as http:
        created = await http.post("/api/cameras", json={"name": "Yard", "url": str(footage)})
        assert created.status_code == 201, created.text
        camera_id = created.json()["id"]

        async def streaming() -> bool:
            status = (await http.get(f"/api/cameras/{camera_id}/status")).json()
            return status.get("state") == "streaming"

        await eventually(streaming, timeout=20)
        await page.goto(server_url + "/")  # type: ignore[attr-defined]
        await page.fill("#key-form input[name=key]", API_KEY)  # type: ignore[attr-defined]
        await page.click("#key-form button[type=submit]")  # type: ignore[attr-defined]
        await page.wait_for_selector("#conn[data-state=on]", timeout=15_000)  # type: ignore[attr-defined]

        # a live event reaches the feed before its clip exists; the clip button appears once it does
        body = {"camera_id": camera_id, "type": "door_open", "severity": "high"}
        event_id = (await http.post("/api/events", json=body)).json()["id"]
        item = page.locator(f'.feed-item[data-id="{event_id}"]')  # type: ignore[attr-defined]
        await item.wait_for(state="visible", timeout=10_000)
        assert await item.locator(".clip-btn").count() == 0
        await item.locator(".clip-btn").click(timeout=30_000)
        await plays(page, f'.feed-item[data-id="{event_id}"] video.clip')
        row = (await http.get(f"/api/events/{event_id}")).json()
        assert row["clip_url"] == f"/api/events/{event_id}/clip.mp4"

        # the events tab: the row's button plays the clip in a row under it
        await page.click(".tabs button[data-tab=events]")  # type: ignore[attr-defined]
        row_sel = f'#events-body tr[data-id="{event_id}"]'
        await page.click(f"{row_sel} .clip-btn", timeout=10_000)  # type: ignore[attr-defined]
        await plays(page, f"{row_sel} + tr.clip-row video.clip")
        assert page.errors == []  # type: ignore[attr-defined]
