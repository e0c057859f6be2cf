"""The dashboard draws zones and lines on a camera tile; a zone drawn with the mouse is saved (Chromium)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.config import Settings
from tests.conftest import API_KEY, AUTH, make_settings
from tests.support.coco import require_coco
from tests.support.media import media_path, write_video
from tests.support.server import running_server

pytestmark = pytest.mark.browser

DOOR = [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4], [0.1, 0.4]]
GATE = [[0.7, 0.0], [0.7, 1.0]]  # drawn top to bottom: "in" is to its left in the picture (x decreasing)


@pytest.fixture
def settings(tmp_path: Path, coco_models_copy: Path) -> Settings:
    return make_settings(tmp_path / "data", models_dir=coco_models_copy)


PIXEL = """([x, y]) => { const c = document.querySelector('.tile canvas.overlay');
    const at = c.getContext('2d').getImageData(Math.round(x * c.width), Math.round(y * c.height), 1, 1);
    return [...at.data]; }"""


def pixel(tab: object, x: float, y: float) -> object:
    """RGBA of the tile's overlay at a normalised point of the picture."""
    return tab.evaluate(PIXEL, [x, y])  # type: ignore[attr-defined]


async def test_tile_shows_zones_and_lines_and_saves_a_drawn_zone(
    page: object,
    server_url: str,
    settings: Settings,
) -> None:
    video = str(write_video(media_path(settings, "yard.avi"), seconds=8, size=(320, 240)))
    detector = {"model": "yolov3-tiny", "classes": ["person"], "zones": [{"name": "door", "polygon": DOOR}],
                "rules": [{"type": "line_crossing", "name": "gate", "line": GATE}]}  # fmt: skip
    async with httpx.AsyncClient(base_url=server_url, headers=AUTH) as http:
        body = {"name": "Yard", "url": video, "analyzers": [{"name": "detector", "options": detector}]}
        cam = (await http.post("/api/cameras", json=body)).json()
        await page.goto(server_url + "/")  # type: ignore[attr-defined]
        await page.fill("#key-form input[name=key]", API_KEY)  # type: ignore[attr-defined]
        await page.click("#key-form button[type=submit]")  # type: ignore[attr-defined]
        await page.wait_for_selector(".tile.live", timeout=20_000)  # type: ignore[attr-defined]
        await page.wait_for_function("document.querySelector('.tile canvas.overlay').width === 320")  # type: ignore[attr-defined]

        # the zone is shaded green inside, the line orange, the rest of the picture untouched
        r, g, b, a = await pixel(page, 0.25, 0.25)  # type: ignore[misc]
        assert a > 0 and g > r and g > b, (r, g, b, a)
        r, g, b, a = await pixel(page, 0.7, 0.8)  # type: ignore[misc]
        assert a > 200 and r > 200 and 100 < g < 200 and b < 80, (r, g, b, a)
        assert (await pixel(page, 0.55, 0.8))[3] == 0  # type: ignore[index]

        # when a user draws a triangle with the mouse and names it
        await page.click(".tile .tile-zone")  # type: ignore[attr-defined]
        box = await page.locator(".tile canvas.overlay").bounding_box()  # type: ignore[attr-defined]
        # the 4:3 picture is shown letterboxed (object-fit: contain) in the 16:9 tile
        shown_w = box["height"] * 4 / 3
        left = box["x"] + (box["width"] - shown_w) / 2
        corners = [(0.5, 0.6), (0.9, 0.6), (0.7, 0.95)]
        for x, y in corners:
            await page.mouse.click(left + x * shown_w, box["y"] + y * box["height"])  # type: ignore[attr-defined]
        await page.fill(".zone-form input[name=zone]", "porch")  # type: ignore[attr-defined]
        await page.click(".zone-form button[type=submit]")  # type: ignore[attr-defined]
        form = page.locator(".zone-form")  # type: ignore[attr-defined]
        try:
            await form.wait_for(state="detached", timeout=10_000)
        except Exception:
            raise AssertionError(await form.locator(".zone-error").text_content()) from None

        # then the camera's detector has the new zone, where it was drawn, and the old one is kept
        saved = (await http.get(f"/api/cameras/{cam['id']}")).json()
        zones = saved["analyzers"][0]["options"]["zones"]
        assert [z["name"] for z in zones] == ["door", "porch"]
        for (x, y), (sx, sy) in zip(corners, zones[1]["polygon"], strict=True):
            assert abs(x - sx) < 0.02 and abs(y - sy) < 0.02, zones[1]["polygon"]
        # and it is drawn at once
        r, g, b, a = await pixel(page, 0.6, 0.68)  # type: ignore[misc]
        assert a > 0 and g > r, (r, g, b, a)
        assert page.errors == []  # type: ignore[attr-defined]


async def test_enable_detection_installs_the_model_and_adds_the_detector(
    page: object,
    tmp_path: Path,
) -> None:
    # given a server whose models dir has no detector yet, and a camera with no detector
    require_coco()
    plain = make_settings(tmp_path / "plain")
    video = str(write_video(media_path(plain, "street.avi"), seconds=8, size=(320, 240)))
    with running_server(plain) as url:
        async with httpx.AsyncClient(base_url=url, headers=AUTH) as http:
            cam = (await http.post("/api/cameras", json={"name": "Street", "url": video})).json()
            await page.goto(url + "/")  # type: ignore[attr-defined]
            await page.fill("#key-form input[name=key]", API_KEY)  # type: ignore[attr-defined]
            await page.click("#key-form button[type=submit]")  # type: ignore[attr-defined]
            # when the user asks to draw a zone, is offered detection and accepts
            await page.click(".tile .tile-zone")  # type: ignore[attr-defined]
            await page.click(".zone-form .zone-enable")  # type: ignore[attr-defined]
            await page.wait_for_selector(".zone-form .zone-enable", state="detached", timeout=60_000)  # type: ignore[attr-defined]
            # then the model was converted and registered on the server, and the camera detects with it
            models = {m["name"] for m in (await http.get("/api/models")).json()}
            assert "yolov3-tiny" in models
            analyzers = (await http.get(f"/api/cameras/{cam['id']}")).json()["analyzers"]
            assert [(a["name"], a["options"]["model"], a["options"]["mode"]) for a in analyzers] == [
                ("detector", "yolov3-tiny", "regions")
            ]
            assert page.errors == []  # type: ignore[attr-defined]
