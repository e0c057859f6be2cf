"""POST /api/models/install: an admin installs the built-in COCO detector from the API, no files named."""

from __future__ import annotations

import httpx

from app.config import Settings
from tests.support.coco import require_coco


async def test_install_converts_registers_and_persists(
    app_client: httpx.AsyncClient, settings: Settings
) -> None:
    require_coco()
    r = await app_client.post(
        "/api/models/install", json={"name": "yolov3-tiny", "size": 320, "install_as": "coco320"}
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "coco320" and body["loaded"] and body["input_shape"][1:] == [3, 320, 320]
    assert (settings.resolved_models_dir / "coco320.json").is_file()
    assert (settings.resolved_models_dir / "coco320.onnx").is_file()
    # the name is taken now
    again = await app_client.post(
        "/api/models/install", json={"name": "yolov3-tiny", "install_as": "coco320"}
    )
    assert again.status_code == 409
    # only built-in names, sizes the converter takes, and nothing else in the body
    for bad in (
        {"name": "../etc"},
        {"name": "yolov3-tiny", "size": 333},
        {"name": "yolov3-tiny", "path": "/x"},
    ):
        assert (await app_client.post("/api/models/install", json=bad)).status_code == 422, bad
    # a camera can use it at once
    detector = {"name": "detector", "options": {"model": "coco320", "classes": ["person"]}}
    camera = {"name": "c", "url": "rtsp://127.0.0.1:9/x", "enabled": False, "analyzers": [detector]}
    assert (await app_client.post("/api/cameras", json=camera)).status_code == 201
