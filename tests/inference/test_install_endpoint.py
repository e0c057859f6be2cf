"""POST /api/models/install: an admin installs the built-in COCO detector from the API, no files named."""

from __future__ import annotations

import httpx

from app.config import Settings
from tests.support.coco import require_coco


async def test_install_converts_registers_and_persists(
    app_client: httpx.AsyncClient, settings: Settings
) -> None:
    require_coco()
    r = await app_client.post("/api/models/install", json={"name": "yolov3-tiny"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "yolov3-tiny" and body["loaded"] and body["input_shape"][1:] == [3, 416, 416]
    assert (settings.resolved_models_dir / "yolov3-tiny.json").is_file()
    assert (settings.resolved_models_dir / "yolov3-tiny.onnx").is_file()
    # the name is taken now
    assert (await app_client.post("/api/models/install", json={"name": "yolov3-tiny"})).status_code == 409
    # only built-in names, and nothing else in the body (no sizes or paths from clients)
    for bad in (
        {"name": "../etc"},
        {"name": "yolov3-tiny", "size": 320},
        {"name": "yolov3-tiny", "path": "/x"},
    ):
        assert (await app_client.post("/api/models/install", json=bad)).status_code == 422, bad
    # a camera can use it at once
    detector = {"name": "detector", "options": {"model": "yolov3-tiny", "classes": ["person"]}}
    camera = {"name": "c", "url": "rtsp://127.0.0.1:9/x", "enabled": False, "analyzers": [detector]}
    assert (await app_client.post("/api/cameras", json=camera)).status_code == 201
