"""/api/cameras/{id}/restream through the app (real DB, real runtime): store, mask, validate, start, stop."""

from __future__ import annotations

import httpx

from app.config import Settings
from app.lifespan import Runtime
from app.main import create_app
from tests.conftest import AUTH


def runtime(client: httpx.AsyncClient) -> Runtime:
    return client._transport.app.state.runtime  # type: ignore[attr-defined,no-any-return]


async def make_camera(client: httpx.AsyncClient) -> int:
    r = await client.post("/api/cameras", json={"name": "lobby", "url": "rtsp://127.0.0.1:9/cam"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


class TestRestreamApi:
    async def test_put_get_delete_and_the_runtime_follows(self, app_client: httpx.AsyncClient) -> None:
        cam = await make_camera(app_client)
        body = {"url": "rtsp://pub:s3cret@127.0.0.1:9/lobby", "fps": 5, "width": 640, "overlays": ["boxes"]}
        r = await app_client.put(f"/api/cameras/{cam}/restream", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["url"] == "rtsp://pub:****@127.0.0.1:9/lobby" and r.json()["overlays"] == ["boxes"]
        assert (await app_client.get(f"/api/cameras/{cam}/restream")).json()["fps"] == 5
        health = (await app_client.get("/api/health")).json()
        assert str(cam) in health["restream"] and "s3cret" not in str(health)  # running, retrying
        r = await app_client.put(f"/api/cameras/{cam}/restream", json={**body, "enabled": False})
        assert (
            r.status_code == 200 and runtime(app_client).restream.stats() == {}
        )  # encoding only while enabled
        assert (await app_client.delete(f"/api/cameras/{cam}/restream")).status_code == 204
        assert (await app_client.get(f"/api/cameras/{cam}/restream")).status_code == 404

    async def test_bad_input_is_422_naming_the_field_and_unknown_cameras_404(
        self, app_client: httpx.AsyncClient
    ) -> None:
        cam = await make_camera(app_client)
        for bad, field in [
            ({"url": "http://127.0.0.1/x"}, "url"),
            ({"url": "rtsp://127.0.0.1/x", "fps": 60}, "fps"),
            ({"url": "rtsp://127.0.0.1/x", "overlays": ["sparkles"]}, "overlays.0"),
        ]:
            r = await app_client.put(f"/api/cameras/{cam}/restream", json=bad)
            assert r.status_code == 422 and r.json()["field"] == field, r.text
        r = await app_client.put("/api/cameras/999/restream", json={"url": "rtsp://127.0.0.1/x"})
        assert r.status_code == 404

    async def test_deleting_the_camera_stops_its_restream(self, app_client: httpx.AsyncClient) -> None:
        cam = await make_camera(app_client)
        await app_client.put(f"/api/cameras/{cam}/restream", json={"url": "rtsp://127.0.0.1:9/x"})
        assert runtime(app_client).restream.stats()
        assert (await app_client.delete(f"/api/cameras/{cam}")).status_code == 204
        assert runtime(app_client).restream.stats() == {}


async def test_a_stored_restream_starts_with_the_server(settings: Settings) -> None:
    for round_ in range(2):
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://x", headers=AUTH) as client:
                if round_ == 0:
                    cam = await make_camera(client)
                    await client.put(f"/api/cameras/{cam}/restream", json={"url": "rtsp://127.0.0.1:9/x"})
                else:
                    assert list(app.state.runtime.restream.stats()) == [str(cam)]
