"""/api/models through the app with its lifespan: list, register, delete, 404/409/422 bodies."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from app.config import Settings
from tests.support.onnx_graphs import yolo_model


def detector_manifest(path: Path, **overrides: object) -> dict[str, object]:
    manifest: dict[str, object] = {
        "name": "tiny-yolo",
        "kind": "detector",
        "path": str(path),
        "input_size": [32, 32],
        "layout": "yolov8",
        "class_names": ["person", "car"],
    }
    manifest.update(overrides)
    return manifest


def pool_of(client: httpx.AsyncClient):  # type: ignore[no-untyped-def]
    return client._transport.app.state.runtime.pool  # type: ignore[attr-defined]


class TestModelsApi:
    async def test_lists_the_builtin_vad_with_its_stats(self, app_client: httpx.AsyncClient) -> None:
        resp = await app_client.get("/api/models")
        assert resp.status_code == 200
        vad = {m["name"]: m for m in resp.json()}["vad-motion"]
        assert vad["kind"] == "vad" and vad["dynamic_batch"] is True
        assert vad["input_shape"] == [None, 2, 64, 112]
        assert vad["cameras"] == [] and vad["calls"] == 0

    async def test_needs_an_api_key(self, app_client: httpx.AsyncClient) -> None:
        resp = await app_client.get("/api/models", headers={"Authorization": ""})
        assert resp.status_code == 401

    async def test_register_get_delete(self, app_client: httpx.AsyncClient, settings: Settings) -> None:
        onnx_path = yolo_model(settings.resolved_models_dir / "ext" / "tiny.onnx")
        resp = await app_client.post("/api/models", json={"manifest": detector_manifest(onnx_path)})
        assert resp.status_code == 201, resp.text
        body = resp.json()
        assert body["name"] == "tiny-yolo" and body["loaded"] is True
        assert body["provider"] == "CPUExecutionProvider"
        assert (settings.resolved_models_dir / "tiny-yolo.json").is_file()  # persists across restarts

        assert (await app_client.get("/api/models/tiny-yolo")).json()["kind"] == "detector"
        assert (await app_client.delete("/api/models/tiny-yolo")).status_code == 204
        assert (await app_client.get("/api/models/tiny-yolo")).status_code == 404
        assert (await app_client.delete("/api/models/tiny-yolo")).status_code == 404

    async def test_register_from_a_manifest_file(
        self, app_client: httpx.AsyncClient, settings: Settings
    ) -> None:
        onnx_path = yolo_model(settings.resolved_models_dir / "ext" / "tiny.onnx", layout="yolov5")
        manifest = settings.resolved_models_dir / "ext" / "tiny.json"
        manifest.write_text(json.dumps(detector_manifest(Path("tiny.onnx"), layout="yolov5")))
        resp = await app_client.post("/api/models", json={"manifest_path": str(manifest)})
        assert resp.status_code == 201, resp.text
        assert resp.json()["path"] == str(onnx_path.resolve())

    async def test_delete_is_refused_while_a_camera_uses_it(self, app_client: httpx.AsyncClient) -> None:
        pool_of(app_client).attach("vad-motion", 7)
        resp = await app_client.delete("/api/models/vad-motion")
        assert resp.status_code == 409
        assert "7" in resp.json()["detail"]

    async def test_bad_manifest_is_a_422_naming_the_field(
        self, app_client: httpx.AsyncClient, settings: Settings
    ) -> None:
        onnx_path = yolo_model(settings.resolved_models_dir / "ext" / "tiny.onnx")
        cases = [
            (detector_manifest(onnx_path, layout=None), "manifest.layout"),
            (detector_manifest(onnx_path, kind="classifier"), "manifest.kind"),
            (detector_manifest(onnx_path, class_names=["a", "b", "c"]), "manifest.class_names"),
            (detector_manifest(onnx_path, input_size=[64, 64]), "manifest.input_size"),
            (detector_manifest(onnx_path, input_shape=[None, 1, 32, 32]), "manifest.input_shape"),
            (detector_manifest(onnx_path, name="Bad Name"), "manifest.name"),
        ]
        for manifest, field in cases:
            resp = await app_client.post("/api/models", json={"manifest": manifest})
            assert resp.status_code == 422, (field, resp.text)
            assert resp.json()["field"] == field, resp.json()

    async def test_a_file_that_is_not_onnx_is_a_422(
        self, app_client: httpx.AsyncClient, settings: Settings
    ) -> None:
        settings.resolved_models_dir.mkdir(parents=True, exist_ok=True)
        junk = settings.resolved_models_dir / "junk.onnx"
        junk.write_bytes(b"definitely not a protobuf" * 10)
        resp = await app_client.post("/api/models", json={"manifest": detector_manifest(junk)})
        assert resp.status_code == 422
        assert resp.json()["field"] == "manifest.path"
        assert "not a loadable ONNX" in resp.json()["detail"]
        gone = detector_manifest(junk.with_name("x.onnx"))
        missing = await app_client.post("/api/models", json={"manifest": gone})
        assert missing.status_code == 422 and missing.json()["field"] == "manifest.path"

    async def test_a_taken_name_is_a_409(self, app_client: httpx.AsyncClient, settings: Settings) -> None:
        onnx_path = yolo_model(settings.resolved_models_dir / "ext" / "tiny.onnx")
        taken = detector_manifest(onnx_path, name="vad-motion")
        resp = await app_client.post("/api/models", json={"manifest": taken})
        assert resp.status_code == 409
