"""The dashboard in a real headless Chromium (Debian's, driven by Playwright; never a downloaded browser)."""

from __future__ import annotations

import httpx
import pytest

from app.config import Settings
from tests.conftest import API_KEY, AUTH
from tests.support.media import media_path
from tests.support.viewer import write_video
from tests.support.waiting import eventually

pytestmark = pytest.mark.browser


async def canvas_data(page: object, camera_id: int) -> str:
    return await page.eval_on_selector(  # type: ignore[attr-defined,no-any-return]
        f'.tile[data-camera="{camera_id}"] canvas.frame', "c => c.toDataURL('image/png')"
    )


async def wait_changed(page: object, camera_id: int, before: str, timeout: float = 10.0) -> str:

    async def changed() -> str | None:
        now = await canvas_data(page, camera_id)
        return now if now != before else None

    return await eventually(  # type: ignore[return-value]
        changed, timeout, interval=0.1, what=f"camera {camera_id}: a canvas change"
    )


async def test_dashboard_watches_adds_a_camera_and_shows_events(
    page: object, server_url: str, settings: Settings
) -> None:
    video = str(write_video(media_path(settings, "square.avi"), seconds=6))
    async with httpx.AsyncClient(base_url=server_url, headers=AUTH) as http:
        first = (await http.post("/api/cameras", json={"name": "Loading dock", "url": video})).json()

        # the key prompt, then the first camera's tile with moving frames
        await page.goto(server_url + "/")  # type: ignore[attr-defined]
        await page.fill("#key-form input[name=key]", "not-the-key")  # type: ignore[attr-defined]
        await page.click("#key-form button[type=submit]")  # type: ignore[attr-defined]
        await page.wait_for_selector("#key-error:text('not accepted')")  # type: ignore[attr-defined]
        await page.fill("#key-form input[name=key]", API_KEY)  # type: ignore[attr-defined]
        await page.click("#key-form button[type=submit]")  # type: ignore[attr-defined]
        await page.wait_for_selector(f'.tile.live[data-camera="{first["id"]}"]', timeout=20_000)  # type: ignore[attr-defined]
        one = await canvas_data(page, first["id"])
        two = await wait_changed(page, first["id"], one)
        assert one != two
        assert await page.locator("#conn").get_attribute("data-state") == "on"  # type: ignore[attr-defined]

        # a bad URL shows the server's 4xx detail in the form
        await page.click("#tab-live [data-action=add-camera]")  # type: ignore[attr-defined]
        await page.fill("#camera-form input[name=name]", "Gate")  # type: ignore[attr-defined]
        await page.fill("#camera-form input[name=url]", "/no/such/file.mp4")  # type: ignore[attr-defined]
        await page.click("#camera-save")  # type: ignore[attr-defined]
        error = page.locator("#camera-form-error")  # type: ignore[attr-defined]
        await error.wait_for(state="visible")
        assert "video file inside ARGUS_MEDIA_DIR" in (await error.text_content())

        # fixing it adds the camera: a new tile appears and goes live
        await page.fill("#camera-form input[name=url]", video)  # type: ignore[attr-defined]
        await page.click("#camera-save")  # type: ignore[attr-defined]
        tile = page.locator(".tile", has_text="Gate")  # type: ignore[attr-defined]
        await tile.wait_for(state="visible")
        gate_id = int(await tile.get_attribute("data-camera"))
        await page.wait_for_selector(f'.tile.live[data-camera="{gate_id}"]', timeout=20_000)  # type: ignore[attr-defined]
        cameras = (await http.get("/api/cameras")).json()
        assert {c["name"] for c in cameras} == {"Loading dock", "Gate"}

        # an event posted for a watched camera shows up in the live feed
        body = {"camera_id": first["id"], "type": "door_open", "severity": "high"}
        accepted = (await http.post("/api/events", json=body)).json()
        item = page.locator(f'.feed-item[data-id="{accepted["id"]}"]')  # type: ignore[attr-defined]
        await item.wait_for(state="visible", timeout=10_000)
        assert "door open" in (await item.text_content()) and "Loading dock" in (await item.text_content())

        # the alerts tab renders the delivery list (or its note)
        await page.click(".tabs button[data-tab=alerts]")  # type: ignore[attr-defined]
        await page.wait_for_selector("#tab-alerts.active")  # type: ignore[attr-defined]
        assert page.errors == []  # type: ignore[attr-defined]


async def test_tile_labels_leave_the_pictures_top_left_caption_alone(
    page: object, server_url: str, settings: Settings
) -> None:
    """Cameras burn a caption (name, clock) into the top-left of the picture: the tile's name and state
    sit above the picture, its time and FPS in a badge in the picture's bottom-right corner."""
    video = str(write_video(media_path(settings, "square.avi"), seconds=6))
    async with httpx.AsyncClient(base_url=server_url, headers=AUTH) as http:
        cam = (await http.post("/api/cameras", json={"name": "Loading dock", "url": video})).json()
    await page.goto(server_url + "/")  # type: ignore[attr-defined]
    await page.fill("#key-form input[name=key]", API_KEY)  # type: ignore[attr-defined]
    await page.click("#key-form button[type=submit]")  # type: ignore[attr-defined]
    tile = f'.tile.live[data-camera="{cam["id"]}"]'
    await page.wait_for_selector(tile, timeout=20_000)  # type: ignore[attr-defined]
    await page.wait_for_function(  # type: ignore[attr-defined]
        f"document.querySelector('{tile} .tile-time').textContent.length > 0"
    )
    boxes = await page.eval_on_selector(  # type: ignore[attr-defined]
        tile,
        """t => Object.fromEntries(
              ["canvas.frame", ".tile-name", ".badge.state", ".tile-bottom", ".tile-edit"].map(s => {
                const r = t.querySelector(s).getBoundingClientRect();
                return [s, {left: r.left, top: r.top, right: r.right, bottom: r.bottom}];
              }))""",
    )
    picture = boxes["canvas.frame"]
    for label in (".tile-name", ".badge.state", ".tile-edit"):
        assert boxes[label]["bottom"] <= picture["top"], (label, boxes)  # above the picture, not on it
    stamp = boxes[".tile-bottom"]
    middle_x = (picture["left"] + picture["right"]) / 2
    middle_y = (picture["top"] + picture["bottom"]) / 2
    assert stamp["left"] >= middle_x and stamp["top"] >= middle_y, boxes  # bottom-right quarter only
    assert stamp["right"] <= picture["right"] and stamp["bottom"] <= picture["bottom"], boxes
    assert page.errors == []  # type: ignore[attr-defined]
