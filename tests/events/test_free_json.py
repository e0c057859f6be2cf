"""Free JSON from clients is bounded at the edge (depth, keys and items, size), and a stored row that cannot
be served any more is left out of listings, never a 500 for everyone (issue 9, item 1)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.events.repository import EventRepository
from app.events.types import NewEvent, utcnow
from app.kit.schemas import MAX_JSON_DEPTH, MAX_JSON_ITEMS
from app.kit.severity import Severity
from app.models import Camera


def nested(levels: int) -> dict[str, Any]:
    """An object `levels` deep: {"a": {"a": ... {} }}."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def loc(r: httpx.Response) -> str:
    return ".".join(str(p) for p in r.json()["errors"][0]["loc"])


async def ingest(client: httpx.AsyncClient, data: Any) -> httpx.Response:
    return await client.post("/api/events", json={"type": "door_open", "data": data})


class TestIngestLimits:
    async def test_300_levels_is_422_and_listing_still_works(self, api_client: httpx.AsyncClient) -> None:
        r = await ingest(api_client, nested(300))  # 637 bytes once made every listing a 500
        assert r.status_code == 422, r.text
        assert loc(r) == "body.data"
        assert "nested deeper than 32 levels" in r.text
        assert len(r.text) < 2_000  # the 300-deep input is not echoed whole
        assert (await api_client.get("/api/events")).status_code == 200

    async def test_32_levels_pass_33_do_not(self, api_client: httpx.AsyncClient) -> None:
        ok = await ingest(api_client, nested(MAX_JSON_DEPTH))
        assert ok.status_code == 202, ok.text
        assert (await ingest(api_client, nested(MAX_JSON_DEPTH + 1))).status_code == 422
        deep_list: Any = [1]
        for _ in range(MAX_JSON_DEPTH):
            deep_list = [deep_list]
        assert (await ingest(api_client, {"x": deep_list})).status_code == 422
        rt = api_client._transport.app.state.runtime  # type: ignore[attr-defined]
        await asyncio.wait_for(rt.event_logger.flush(), 10)
        r = await api_client.get(f"/api/events/{ok.json()['id']}")
        assert r.status_code == 200 and r.json()["data"] == nested(MAX_JSON_DEPTH)

    async def test_key_count_and_size(self, api_client: httpx.AsyncClient) -> None:
        many = {f"k{i}": i for i in range(MAX_JSON_ITEMS + 1)}
        r = await ingest(api_client, many)
        assert r.status_code == 422 and loc(r) == "body.data" and "keys and items" in r.text
        r = await ingest(api_client, {"blob": "x" * 20_000})
        assert r.status_code == 422 and loc(r) == "body.data" and "16384 bytes" in r.text


class TestOtherFreeJson:
    async def test_camera_vad_extras_and_analyzer_options(self, api_client: httpx.AsyncClient) -> None:
        base = {"name": "cam", "url": "rtsp://127.0.0.1:9/x", "enabled": False}
        r = await api_client.post("/api/cameras", json={**base, "vad": {"extra": nested(40)}})
        assert r.status_code == 422 and loc(r) == "body.vad", r.text
        analyzers = [{"name": "detector", "options": {"zones": nested(40)}}]
        r = await api_client.post("/api/cameras", json={**base, "analyzers": analyzers})
        assert r.status_code == 422 and loc(r) == "body.analyzers.0.options", r.text
        r = await api_client.post("/api/cameras", json={**base, "analyzers": [{"name": "d"}] * 17})
        assert r.status_code == 422 and loc(r) == "body.analyzers", r.text
        r = await api_client.post("/api/cameras", json={**base, "vad": {"hold_s": 3}})
        assert r.status_code == 201, r.text
        assert r.json()["vad"]["hold_s"] == 3

    async def test_alert_rule_lists_and_types_are_bounded(self, api_client: httpx.AsyncClient) -> None:
        r = await api_client.post(
            "/api/alert-rules", json={"name": "r", "webhook_ids": [1], "event_types": ["x" * 65]}
        )
        assert r.status_code == 422 and loc(r) == "body.event_types.0", r.text
        r = await api_client.post(
            "/api/alert-rules", json={"name": "r", "webhook_ids": [1], "camera_ids": list(range(1, 300))}
        )
        assert r.status_code == 422 and loc(r) == "body.camera_ids", r.text

    async def test_inline_model_manifest(self, api_client: httpx.AsyncClient) -> None:
        r = await api_client.post("/api/models", json={"manifest": {"name": "m", "extra": nested(40)}})
        assert r.status_code == 422 and loc(r) == "body.manifest", r.text


async def test_a_stored_row_that_cannot_be_served_is_left_out_not_a_500(
    api_app: FastAPI, api_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows written before the limit existed: the page shows the others, the event itself its fields."""
    now = utcnow()
    good = NewEvent(None, "door_open", Severity.high, now, data={"door": "bay"})
    bad = NewEvent(None, "door_open", Severity.high, now - timedelta(seconds=1))
    async with api_app.state.runtime.sessionmaker.begin() as session:
        await EventRepository(session).upsert_many([good.to_row(), {**bad.to_row(), "data": nested(300)}])
    with caplog.at_level(logging.WARNING, logger="argus.events"):
        for _ in range(2):
            r = await api_client.get("/api/events")
            assert r.status_code == 200, r.text
            assert [e["id"] for e in r.json()["items"]] == [good.id]
            assert r.json()["next_cursor"] is None
        one = await api_client.get(f"/api/events/{bad.id}")
        assert one.status_code == 200, one.text
        assert one.json()["id"] == bad.id and one.json()["data"] == {}
    assert (await api_client.get(f"/api/events/{good.id}")).json()["data"] == {"door": "bay"}
    warnings = [r for r in caplog.records if bad.id in r.getMessage()]
    assert len(warnings) == 1  # logged once, not per request


async def test_a_camera_row_that_cannot_be_served_is_left_out_of_the_list(
    api_app: FastAPI, api_client: httpx.AsyncClient
) -> None:
    async with api_app.state.runtime.sessionmaker.begin() as session:
        session.add(Camera(name="old", url="rtsp://127.0.0.1:9/a", enabled=False, vad={"x": nested(300)}))
        session.add(Camera(name="fine", url="rtsp://127.0.0.1:9/b", enabled=False))
    r = await api_client.get("/api/cameras")
    assert r.status_code == 200, r.text
    assert [c["name"] for c in r.json()] == ["fine"]
