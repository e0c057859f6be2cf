"""Cameras REST API: validation and error bodies, masking, pipeline lifecycle, auth."""

from __future__ import annotations

import logging
import threading
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.config import Settings
from tests.conftest import AUTH
from tests.support.media import media_path, write_video
from tests.support.waiting import eventually


@pytest.fixture
def clip(settings: Settings) -> str:
    """In the media directory (the same DATA_DIR/media for `settings` and `db_settings`)."""
    return str(write_video(media_path(settings, "quiet.avi"), seconds=4))


def capture_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("argus.capture:")]


class TestValidation:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"name": "a", "url": "ftp://host/x"}, "url"),
            ({"name": "a", "url": "rtsp://"}, "url"),
            ({"name": "a", "url": "rtsp://h/x\x00"}, "url"),
            ({"name": "a", "url": "rtsp://h/x", "analysis_fps": 0.1}, "analysis_fps"),
            ({"name": "a", "url": "rtsp://h/x", "analysis_fps": 31}, "analysis_fps"),
            ({"name": "", "url": "rtsp://h/x"}, "name"),
            ({"name": "a", "url": "rtsp://h/x", "drop_policy": "random"}, "drop_policy"),
            ({"name": "a", "url": "rtsp://h/x", "decode": "some"}, "decode"),
            ({"name": "a", "url": "rtsp://h/x", "rtsp_transport": "http"}, "rtsp_transport"),
            ({"name": "a", "url": "rtsp://h/x", "pre_roll_s": 600}, "pre_roll_s"),
            ({"name": "a", "url": "rtsp://h/x", "record": {"mode": "always"}}, "record"),
            ({"name": "a", "url": "rtsp://h/x", "record": {"retain_days": 0}}, "record"),
            ({"url": "rtsp://h/x"}, "name"),
            ({"name": "a", "url": "rtsp://h/x", "colour": "red"}, "colour"),
        ],
    )
    async def test_bad_input_is_422_naming_the_field(
        self, api_client: httpx.AsyncClient, body: dict[str, object], field: str
    ) -> None:
        r = await api_client.post("/api/cameras", json=body)
        assert r.status_code == 422
        locations = [".".join(str(p) for p in e["loc"]) for e in r.json()["errors"]]
        assert any(field in loc for loc in locations), locations

    async def test_unknown_analyzer_is_422_naming_it(self, api_client: httpx.AsyncClient, clip: str) -> None:
        r = await api_client.post(
            "/api/cameras", json={"name": "a", "url": clip, "analyzers": [{"name": "telepathy"}]}
        )
        assert r.status_code == 422
        assert "telepathy" in r.json()["detail"]
        assert r.json()["field"].startswith("analyzers")

    async def test_duplicate_name_is_409(self, api_client: httpx.AsyncClient, clip: str) -> None:
        assert (await api_client.post("/api/cameras", json={"name": "dup", "url": clip})).status_code == 201
        r = await api_client.post("/api/cameras", json={"name": "dup", "url": clip})
        assert r.status_code == 409
        assert r.json()["field"] == "name"

    async def test_rename_onto_existing_name_is_409(self, api_client: httpx.AsyncClient, clip: str) -> None:
        await api_client.post("/api/cameras", json={"name": "one", "url": clip, "enabled": False})
        two = (
            await api_client.post("/api/cameras", json={"name": "two", "url": clip, "enabled": False})
        ).json()
        r = await api_client.patch(f"/api/cameras/{two['id']}", json={"name": "one"})
        assert r.status_code == 409

    @pytest.mark.parametrize(
        "path", ["/api/cameras/999", "/api/cameras/999/status", "/api/cameras/999/snapshot.jpg"]
    )
    async def test_unknown_id_is_404(self, api_client: httpx.AsyncClient, path: str) -> None:
        r = await api_client.get(path)
        assert r.status_code == 404
        assert "999" in r.json()["detail"]

    async def test_patch_null_is_422(self, api_client: httpx.AsyncClient, clip: str) -> None:
        cam = (
            await api_client.post("/api/cameras", json={"name": "n", "url": clip, "enabled": False})
        ).json()
        r = await api_client.patch(f"/api/cameras/{cam['id']}", json={"url": None})
        assert r.status_code == 422
        assert r.json()["field"] == "url"


class TestMasking:
    async def test_password_never_returned_or_logged(
        self, api_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        url = "rtsp://admin:s3cret-pw@127.0.0.1:9/stream1"
        created = await api_client.post("/api/cameras", json={"name": "lobby", "url": url})
        assert created.status_code == 201
        assert created.json()["url"] == "rtsp://admin:****@127.0.0.1:9/stream1"
        cid = created.json()["id"]

        async def failed_once() -> bool:
            return (await api_client.get(f"/api/cameras/{cid}/status")).json()["last_error"] is not None

        await eventually(failed_once, 15)
        bodies = [
            (await api_client.get("/api/cameras")).text,
            (await api_client.get(f"/api/cameras/{cid}")).text,
            (await api_client.get(f"/api/cameras/{cid}/status")).text,
        ]
        await api_client.delete(f"/api/cameras/{cid}")
        for text in [*bodies, caplog.text]:
            assert "s3cret-pw" not in text
        assert "admin:****@" in caplog.text


class TestLifecycle:
    async def test_create_streams_and_delete_stops(self, api_client: httpx.AsyncClient, clip: str) -> None:
        cam = (await api_client.post("/api/cameras", json={"name": "c", "url": clip})).json()

        async def streaming() -> bool:
            status = (await api_client.get(f"/api/cameras/{cam['id']}/status")).json()
            return status["state"] == "streaming" and status["frames_analyzed"] > 0

        await eventually(streaming, 15)
        snap = await api_client.get(f"/api/cameras/{cam['id']}/snapshot.jpg")
        assert snap.status_code == 200
        assert snap.content[:2] == b"\xff\xd8"
        assert f"argus.capture:{cam['id']}" in capture_threads()

        assert (await api_client.delete(f"/api/cameras/{cam['id']}")).status_code == 204
        assert f"argus.capture:{cam['id']}" not in capture_threads()
        assert (await api_client.get(f"/api/cameras/{cam['id']}")).status_code == 404

    async def test_disable_stops_and_enable_restarts(self, api_client: httpx.AsyncClient, clip: str) -> None:
        cam = (await api_client.post("/api/cameras", json={"name": "d", "url": clip})).json()
        r = await api_client.patch(f"/api/cameras/{cam['id']}", json={"enabled": False})
        assert r.json()["state"] == "stopped"
        assert f"argus.capture:{cam['id']}" not in capture_threads()
        r = await api_client.patch(f"/api/cameras/{cam['id']}", json={"enabled": True, "analysis_fps": 2})
        assert r.json()["analysis_fps"] == 2
        assert f"argus.capture:{cam['id']}" in capture_threads()

    async def test_patching_the_rate_retunes_without_reconnecting(
        self, api_client: httpx.AsyncClient, clip: str
    ) -> None:
        cam = (await api_client.post("/api/cameras", json={"name": "r", "url": clip})).json()
        before = [t for t in threading.enumerate() if t.name == f"argus.capture:{cam['id']}"]
        r = await api_client.patch(
            f"/api/cameras/{cam['id']}", json={"analysis_fps": 1, "drop_policy": "every_nth"}
        )
        assert r.status_code == 200
        after = [t for t in threading.enumerate() if t.name == f"argus.capture:{cam['id']}"]
        assert before == after  # the same capture thread: the stream was not reopened
        r = await api_client.patch(
            f"/api/cameras/{cam['id']}", json={"decode": "all", "pre_roll_s": 8, "record": {"mode": "off"}}
        )
        assert r.status_code == 200
        assert (r.json()["decode"], r.json()["pre_roll_s"], r.json()["record"]["mode"]) == ("all", 8, "off")
        status = (await api_client.get(f"/api/cameras/{cam['id']}/status")).json()
        assert (status["decode"], status["gate"]) == ("all", "active")
        after = [t for t in threading.enumerate() if t.name == f"argus.capture:{cam['id']}"]
        assert before == after  # decoding and recording settings apply live too
        r = await api_client.patch(f"/api/cameras/{cam['id']}", json={"vad": {"threshold": 5}})
        after_chain_change = [t for t in threading.enumerate() if t.name == f"argus.capture:{cam['id']}"]
        assert after_chain_change != before  # analyzers changed: the pipeline was rebuilt

    async def test_a_pipeline_that_cannot_start_is_reported_and_releases_its_models(
        self, api_client: httpx.AsyncClient, settings: Settings
    ) -> None:
        clip = write_video(media_path(settings, "gone.avi"), seconds=1)
        cam = (
            await api_client.post("/api/cameras", json={"name": "g", "url": str(clip), "enabled": False})
        ).json()
        clip.unlink()  # the file vanishes after the URL was validated
        r = await api_client.patch(f"/api/cameras/{cam['id']}", json={"enabled": True})
        assert r.status_code == 200
        assert r.json()["state"] == "stopped"
        status = (await api_client.get(f"/api/cameras/{cam['id']}/status")).json()
        assert "failed to start" in status["last_error"]
        models = (await api_client.get("/api/models")).json()
        assert all(cam["id"] not in m["cameras"] for m in models)

    async def test_a_disabled_camera_serves_no_stale_snapshot(
        self, api_client: httpx.AsyncClient, clip: str
    ) -> None:
        cam = (await api_client.post("/api/cameras", json={"name": "s", "url": clip})).json()

        async def has_snapshot() -> bool:
            return (await api_client.get(f"/api/cameras/{cam['id']}/snapshot.jpg")).status_code == 200

        await eventually(has_snapshot, 15)
        await api_client.patch(f"/api/cameras/{cam['id']}", json={"enabled": False})
        assert (await api_client.get(f"/api/cameras/{cam['id']}/snapshot.jpg")).status_code == 404

    async def test_list_shows_state(self, api_client: httpx.AsyncClient, clip: str) -> None:
        await api_client.post("/api/cameras", json={"name": "off", "url": clip, "enabled": False})
        cams = (await api_client.get("/api/cameras")).json()
        assert [(c["name"], c["state"]) for c in cams] == [("off", "stopped")]


class TestAuth:
    @pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}])
    async def test_protected_routes_401(self, api_client: httpx.AsyncClient, headers: dict[str, str]) -> None:
        for path in ["/api/cameras", "/api/events", "/api/models", "/metrics"]:
            r = await api_client.get(path, headers={"Authorization": ""} | headers)
            assert r.status_code == 401, path

    async def test_health_and_docs_are_public(self, api_client: httpx.AsyncClient) -> None:
        for path in ["/api/health", "/docs", "/openapi.json"]:
            assert (await api_client.get(path, headers={"Authorization": ""})).status_code == 200

    async def test_stored_key_from_cli_works(self, api_client: httpx.AsyncClient, db_settings) -> None:  # type: ignore[no-untyped-def]
        from app.__main__ import _create_key

        key = await _create_key(db_settings, "ops")
        r = await api_client.get("/api/cameras", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200


class TestReadAfterWrite:
    async def test_the_write_is_committed_before_the_response_starts(
        self, api_app: FastAPI, clip: str
    ) -> None:
        """A client reading right after a 201 must see the row: commit first, then respond."""
        order: list[str] = []

        def committed(_: Session) -> None:
            order.append("commit")

        async def recording(scope: Any, receive: Any, send: Any) -> None:
            async def send_and_record(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    order.append("response")
                await send(message)

            await api_app(scope, receive, send_and_record)

        event.listen(Session, "after_commit", committed)
        try:
            transport = httpx.ASGITransport(app=recording)
            async with httpx.AsyncClient(transport=transport, base_url="http://a", headers=AUTH) as c:
                r = await c.post("/api/cameras", json={"name": "rw", "url": clip, "enabled": False})
        finally:
            event.remove(Session, "after_commit", committed)
        assert r.status_code == 201
        assert order.index("commit") < order.index("response"), order
