"""Wrong JSON types are 422s naming the field, not silently coerced (`enabled: 0`, `score: false`, a number
as a date-time): coercion hides client bugs."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter, ValidationError

from app.kit.schemas import IsoDateTime

WEBHOOK = {"name": "w", "url": "http://127.0.0.1:9/hook", "secret": "0123456789abcdef"}
CAMERA = {"name": "c", "url": "rtsp://127.0.0.1:9/cam"}


@pytest.mark.parametrize("value", ["0.5", "1700000000", " 1e5 ", 0.5, 1700000000, True])
def test_iso_datetime_refuses_numbers(value: Any) -> None:
    with pytest.raises(ValidationError, match="ISO 8601"):
        TypeAdapter(IsoDateTime).validate_python(value)


def test_iso_datetime_takes_iso_text() -> None:
    assert TypeAdapter(IsoDateTime).validate_python("2026-11-23T17:00:00Z").year == 2026


async def test_datetime_query_parameters_refuse_numbers(app_client: httpx.AsyncClient) -> None:
    for path, name in [("/api/events", "since"), ("/api/events", "until"), ("/api/alerts", "since")]:
        r = await app_client.get(path, params={name: "0.5"})
        assert r.status_code == 422 and r.json()["field"] == name, (path, name, r.text)
        r = await app_client.get(path, params={name: "2026-11-23T00:00:00Z"})
        assert r.status_code == 200, (path, name, r.text)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "door", "score": False}, "score"),
        ({"type": "door", "score": "1.5"}, "score"),
        ({"type": "door", "camera_id": True}, "camera_id"),
        ({"type": "door", "started_at": 0.5}, "started_at"),
        ({"type": "door", "started_at": "1700000000"}, "started_at"),
    ],
)
async def test_event_ingest_refuses_coercible_types(
    app_client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    r = await app_client.post("/api/events", json=body)
    assert r.status_code == 422 and r.json()["field"] == field, r.text


async def test_webhook_and_rule_fields_are_strict(app_client: httpx.AsyncClient) -> None:
    for bad, field in [({"enabled": 0}, "enabled"), ({"timeout_s": True}, "timeout_s")]:
        r = await app_client.post("/api/webhooks", json={**WEBHOOK, **bad})
        assert r.status_code == 422 and r.json()["field"] == field, r.text
    r = await app_client.post("/api/webhooks", json={**WEBHOOK, "timeout_s": 3})  # an int is a number
    assert r.status_code == 201, r.text
    hook = r.json()["id"]
    r = await app_client.patch(f"/api/webhooks/{hook}", json={"enabled": "false"})
    assert r.status_code == 422 and r.json()["field"] == "enabled", r.text
    rule = {"name": "r", "webhook_ids": [hook]}
    for bad, field in [({"enabled": 1}, "enabled"), ({"webhook_ids": [True]}, "webhook_ids.0")]:
        r = await app_client.post("/api/alert-rules", json={**rule, **bad})
        assert r.status_code == 422 and r.json()["field"] == field, r.text


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"enabled": 0}, "enabled"),
        ({"analysis_fps": False}, "analysis_fps"),
        ({"drop_every_n": 2.0}, "drop_every_n"),
        ({"vad": {"enabled": 1}}, "vad.enabled"),
    ],
)
async def test_camera_fields_are_strict(
    app_client: httpx.AsyncClient, bad: dict[str, Any], field: str
) -> None:
    r = await app_client.post("/api/cameras", json={**CAMERA, "enabled": False, **bad})
    assert r.status_code == 422 and r.json()["field"] == field, r.text
