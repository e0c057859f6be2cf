"""Stored API keys: list and revoke over /api/api-keys (admin keys only) and with `argus apikey`."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from app.main import create_app
from tests.conftest import AUTH, make_settings
from tests.test_preflight import serve


class TestApi:
    async def test_admin_creates_lists_and_revokes_a_key_that_stops_at_once(
        self, app_client: httpx.AsyncClient
    ) -> None:
        # given a key made by the admin (the static ARGUS_API_KEYS key)
        made = await app_client.post("/api/api-keys", json={"name": " ops "})
        assert made.status_code == 201, made.text
        created = made.json()
        key, key_id = created["key"], created["id"]
        assert created["name"] == "ops" and key.startswith(created["prefix"]) and not created["revoked"]
        ops = {"Authorization": f"Bearer {key}"}
        # the new key works at once, and is no admin key
        assert (await app_client.get("/api/cameras", headers=ops)).status_code == 200
        refused = await app_client.get("/api/api-keys", headers=ops)
        assert refused.status_code == 403 and "admin" in refused.json()["detail"]
        # listed with name, prefix, creation and last use, never the key or its hash
        listed = (await app_client.get("/api/api-keys")).json()
        assert [(k["id"], k["name"], k["prefix"]) for k in listed] == [(key_id, "ops", created["prefix"])]
        assert set(listed[0]) == {"id", "name", "prefix", "created_at", "last_used_at", "revoked"}
        # when revoked, it is refused on the next request (the verifier's cache forgets it)
        assert (await app_client.delete(f"/api/api-keys/{key_id}")).status_code == 204
        assert (await app_client.get("/api/cameras", headers=ops)).status_code == 401
        assert (await app_client.get("/api/api-keys")).json()[0]["revoked"] is True
        assert (await app_client.delete(f"/api/api-keys/{key_id}")).status_code == 204  # again: no change
        assert (await app_client.delete("/api/api-keys/999")).status_code == 404

    async def test_bad_names_and_no_key(self, app_client: httpx.AsyncClient) -> None:
        for body in ({"name": ""}, {"name": "a\nb"}, {"name": 7}, {}):
            r = await app_client.post("/api/api-keys", json=body)
            assert r.status_code == 422 and r.json()["field"] == "name", (body, r.text)
        anonymous = {"Authorization": ""}
        assert (await app_client.get("/api/api-keys", headers=anonymous)).status_code == 401

    async def test_openapi_documents_403(self, app_client: httpx.AsyncClient) -> None:
        doc = (await app_client.get("/openapi.json")).json()
        for method in ("get", "post"):
            assert "403" in doc["paths"]["/api/api-keys"][method]["responses"]
        assert {"403", "404"} <= set(doc["paths"]["/api/api-keys/{key_id}"]["delete"]["responses"])


def argus(data_dir: Path, *args: str) -> tuple[int, str]:
    result = serve({"ARGUS_DATA_DIR": str(data_dir)}, command=("apikey", *args))
    return result.returncode, (result.stdout + result.stderr).strip()


async def test_cli_lists_and_revokes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert argus(data_dir, "list") == (0, "no stored API keys (keys in ARGUS_API_KEYS are not stored)")
    rc, key = argus(data_dir, "create", "--name", "ops")
    assert rc == 0 and key.startswith("argus_")
    # the key is used once through a server, so `list` shows when
    settings = make_settings(data_dir)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://argus") as client:
            r = await client.get("/api/cameras", headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200
            await app.state.runtime.verifier.drain()
    rc, table = argus(data_dir, "list")
    header, row = table.splitlines()
    assert rc == 0 and header.split()[:3] == ["id", "name", "prefix"]
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
    assert re.match(rf"\s*1\s+ops\s+{re.escape(key[:10])}\s+{stamp}\s+{stamp}\s+active$", row), row
    assert "never" not in row  # last used is recorded
    assert key not in table
    assert argus(data_dir, "revoke", key[:10])[1].startswith("revoked key 1 (ops")
    assert argus(data_dir, "list")[1].endswith("revoked")
    assert argus(data_dir, "revoke", "42")[0] == 1
    # a revoked key opens nothing
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://argus", headers=AUTH) as client:
            r = await client.get("/api/cameras", headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 401
