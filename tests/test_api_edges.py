"""Input at the API edge that used to reach the database or the JSON encoder and come back as a 500:
ids past int64, NaN/Infinity, NUL characters. Each is a 422 naming the field, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.errors import json_safe

BIG = 2**70
ID_MAX = 2**31 - 1  # id columns are INTEGER: 32-bit on PostgreSQL


def strict_json(r: httpx.Response) -> Any:
    """The body parsed the way a strict client does: NaN/Infinity are not JSON."""

    def refuse(name: str) -> None:
        raise AssertionError(f"response holds non-JSON constant {name}")

    return json.loads(r.text, parse_constant=refuse)


def locs(r: httpx.Response) -> list[str]:
    return [".".join(str(p) for p in e["loc"]) for e in strict_json(r)["errors"]]


async def a_webhook(client: httpx.AsyncClient) -> int:
    body = {"name": "hook", "url": "http://127.0.0.1:9/x", "secret": "a-long-secret"}
    r = await client.post("/api/webhooks", json=body)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


class TestIdsOutOfRange:
    @pytest.mark.parametrize(
        ("path", "loc"),
        [
            (f"/api/events?camera_id={BIG}", "query.camera_id"),
            (f"/api/alerts?webhook_id={BIG}", "query.webhook_id"),
            (f"/api/alerts?camera_id={BIG}", "query.camera_id"),
            (f"/api/webhooks/{BIG}", "path.webhook_id"),
            (f"/api/alert-rules/{BIG}", "path.rule_id"),
            ("/api/webhooks/0", "path.webhook_id"),
        ],
    )
    async def test_query_and_path_ids_are_422_naming_the_field(
        self, api_client: httpx.AsyncClient, path: str, loc: str
    ) -> None:
        r = await api_client.get(path)
        assert r.status_code == 422, r.text
        assert locs(r) == [loc]

    async def test_just_past_int32_is_422_and_the_largest_id_a_plain_404(
        self, api_client: httpx.AsyncClient
    ) -> None:
        assert (await api_client.get(f"/api/webhooks/{ID_MAX + 1}")).status_code == 422
        assert (await api_client.get(f"/api/webhooks/{ID_MAX}")).status_code == 404
        assert (await api_client.get(f"/api/alerts?webhook_id={ID_MAX}")).json()["items"] == []

    async def test_event_body_camera_id(self, api_client: httpx.AsyncClient) -> None:
        r = await api_client.post("/api/events", json={"type": "door_open", "camera_id": BIG})
        assert r.status_code == 422
        assert locs(r) == ["body.camera_id"]

    @pytest.mark.parametrize("field", ["webhook_ids", "camera_ids"])
    async def test_alert_rule_id_lists(self, api_client: httpx.AsyncClient, field: str) -> None:
        body: dict[str, Any] = {"name": "r", "webhook_ids": [await a_webhook(api_client)]}
        body[field] = [1, BIG]
        r = await api_client.post("/api/alert-rules", json=body)
        assert r.status_code == 422
        assert locs(r) == [f"body.{field}.1"]

    async def test_camera_path_id(self, api_client: httpx.AsyncClient) -> None:
        r = await api_client.get("/api/cameras/99999999999999999999")
        assert r.status_code == 422
        assert locs(r) == ["path.camera_id"]


class TestNonFiniteNumbers:
    async def post_raw(self, client: httpx.AsyncClient, text: str) -> httpx.Response:
        return await client.post("/api/events", content=text, headers={"Content-Type": "application/json"})

    @pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
    async def test_score_is_a_json_safe_422(self, api_client: httpx.AsyncClient, value: str) -> None:
        r = await self.post_raw(api_client, f'{{"type": "door_open", "score": {value}}}')
        assert r.status_code == 422
        (error,) = strict_json(r)["errors"]
        assert error["loc"] == ["body", "score"]
        assert error["input"] == value  # echoed as text, the response stays strict JSON

    async def test_infinity_inside_data_is_rejected_not_stored_as_null(
        self, api_client: httpx.AsyncClient
    ) -> None:
        r = await self.post_raw(api_client, '{"type": "door_open", "data": {"door": {"x": Infinity}}}')
        assert r.status_code == 422
        (error,) = strict_json(r)["errors"]
        assert error["loc"] == ["body", "data"]
        assert "door.x" in error["msg"] and "finite" in error["msg"]

    async def test_nan_in_webhook_timeout(self, api_client: httpx.AsyncClient) -> None:
        text = '{"name": "h", "url": "http://127.0.0.1:9/", "secret": "a-long-secret", "timeout_s": NaN}'
        r = await api_client.post("/api/webhooks", content=text, headers={"Content-Type": "application/json"})
        assert r.status_code == 422
        assert locs(r) == ["body.timeout_s"]


class TestNulCharacters:
    async def test_webhook_name_url_and_secret(self, api_client: httpx.AsyncClient) -> None:
        good = {"name": "h", "url": "http://127.0.0.1:9/", "secret": "a-long-secret"}
        for field, bad in [
            ("name", "a\x00b"),
            ("url", "http://127.0.0.1:9/\x00"),
            ("secret", "a-long\x00-secret"),
        ]:
            r = await api_client.post("/api/webhooks", json={**good, field: bad})
            assert r.status_code == 422, field
            assert locs(r) == [f"body.{field}"]
            msg = strict_json(r)["errors"][0]["msg"]
            assert "NUL" in msg or "control characters" in msg, msg
        assert (await api_client.get("/api/webhooks")).json() == []

    async def test_alert_rule_name_and_event_types(self, api_client: httpx.AsyncClient) -> None:
        hook = await a_webhook(api_client)
        r = await api_client.post("/api/alert-rules", json={"name": "r\x00", "webhook_ids": [hook]})
        assert r.status_code == 422 and locs(r) == ["body.name"]
        r = await api_client.post(
            "/api/alert-rules", json={"name": "r", "webhook_ids": [hook], "event_types": ["a\x00"]}
        )
        assert r.status_code == 422 and locs(r) == ["body.event_types"]

    async def test_camera_name(self, api_client: httpx.AsyncClient, tmp_path: Path) -> None:
        r = await api_client.post("/api/cameras", json={"name": "gate\x00", "url": "rtsp://127.0.0.1:9/x"})
        assert r.status_code == 422
        assert locs(r) == ["body.name"]

    async def test_event_data_ids_and_type_filter(self, api_client: httpx.AsyncClient) -> None:
        r = await api_client.post("/api/events", json={"type": "door_open", "data": {"who": "a\x00"}})
        assert r.status_code == 422 and locs(r) == ["body.data"]
        r = await api_client.get("/api/events", params={"type": "door\x00"})
        assert r.status_code == 422 and locs(r) == ["query.type"]
        assert (await api_client.get("/api/events/ab%00cd")).status_code == 422
        assert (await api_client.get("/api/alerts/ab%00cd")).status_code == 422


def test_json_safe_makes_any_error_list_strict_json() -> None:
    errors = [
        {"input": float("nan"), "ctx": {"error": ValueError("bad"), "le": float("inf")}, "loc": ("a", 1)}
    ]
    safe = json_safe(errors)
    assert safe == [{"input": "NaN", "ctx": {"error": "bad", "le": "Infinity"}, "loc": ["a", 1]}]
    json.dumps(safe, allow_nan=False)
