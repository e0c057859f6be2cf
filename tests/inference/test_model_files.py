"""POST /api/models reads files only inside ARGUS_MODELS_DIR: regular, bounded, never hanging on a pipe,
and with one answer for every file it will not use (no oracle for which server files exist)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.inference.manifest import MANIFEST_UNUSABLE, MODEL_UNUSABLE
from tests.inference.test_endpoints import detector_manifest
from tests.support.onnx_graphs import yolo_model


@pytest.fixture
def models(settings: Settings) -> Path:
    folder = settings.resolved_models_dir
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def register(client: httpx.AsyncClient, **body: object) -> httpx.Response:
    started = time.monotonic()
    response = await client.post("/api/models", json=body)
    assert time.monotonic() - started < 4, "the request waited on a file"
    return response


async def test_a_manifest_and_model_inside_the_folder_by_relative_path(
    app_client: httpx.AsyncClient, models: Path
) -> None:
    yolo_model(models / "ext" / "tiny.onnx")
    (models / "ext" / "tiny.json").write_text(json.dumps(detector_manifest(Path("tiny.onnx"))))
    r = await register(app_client, manifest_path="ext/tiny.json")
    assert r.status_code == 201, r.text
    assert r.json()["path"] == str(models / "ext" / "tiny.onnx")
    inline = detector_manifest(Path("ext/tiny.onnx"), name="tiny-inline")
    assert (await register(app_client, manifest=inline)).status_code == 201


async def test_every_unusable_manifest_gets_the_same_answer(
    app_client: httpx.AsyncClient, models: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(detector_manifest(models / "x.onnx")))
    (models / "escape.json").symlink_to(outside)
    os.mkfifo(models / "pipe.json")  # opening it for reading used to block a worker thread for good
    (models / "big.json").write_bytes(b" " * (1_048_576 + 1))
    (models / "dir.json").mkdir()
    cases = [
        str(outside),
        "/etc/passwd",
        "/etc/shadow",
        "/dev/zero",
        "/proc/self/environ",
        "../outside.json",
        "escape.json",
        "pipe.json",
        "big.json",
        "dir.json",
        "missing.json",
        "a" * 300 + ".json",
    ]
    for path in cases:
        r = await register(app_client, manifest_path=path)
        assert r.status_code == 422, (path[:60], r.text)
        assert r.json()["detail"] == MANIFEST_UNUSABLE and r.json()["field"] == "manifest_path", path[:60]
    assert (await app_client.get("/api/health")).status_code == 200


async def test_every_unusable_model_file_gets_the_same_answer(
    app_client: httpx.AsyncClient, models: Path, tmp_path: Path
) -> None:
    outside = yolo_model(tmp_path / "outside.onnx")
    (models / "escape.onnx").symlink_to(outside)
    os.mkfifo(models / "pipe.onnx")
    cases = [
        str(outside),
        "/dev/zero",
        "/etc/shadow",
        "escape.onnx",
        "pipe.onnx",
        "missing.onnx",
        "../x.onnx",
    ]
    for path in cases:
        r = await register(app_client, manifest=detector_manifest(Path(path)))
        assert r.status_code == 422, (path, r.text)
        assert r.json()["detail"] == MODEL_UNUSABLE and r.json()["field"] == "manifest.path", path
    # and through a manifest file inside the folder that points outside
    (models / "points-out.json").write_text(json.dumps(detector_manifest(outside)))
    r = await register(app_client, manifest_path="points-out.json")
    assert r.status_code == 422 and r.json()["detail"] == MODEL_UNUSABLE and r.json()["field"] == "path"
