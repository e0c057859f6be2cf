"""The OpenAPI document tells the truth: every error status a route answers, with the body it sends."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import API_KEY

ERROR_REF = "#/components/schemas/ErrorBody"
METHODS = {"get", "post", "patch", "put", "delete"}


@pytest.fixture
async def spec(app_client: httpx.AsyncClient) -> dict[str, Any]:
    r = await app_client.get("/openapi.json")
    assert r.status_code == 200
    return r.json()  # type: ignore[no-any-return]


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, item in spec["paths"].items() for m, op in item.items() if m in METHODS]


def error_schema(op: dict[str, Any], code: str) -> str:
    return op["responses"][code]["content"]["application/json"]["schema"]["$ref"]  # type: ignore[no-any-return]


async def test_every_protected_route_documents_401_with_the_error_body(spec: dict[str, Any]) -> None:
    protected = [(m, p, op) for m, p, op in operations(spec) if p != "/api/health"]
    assert len(protected) > 25
    for method, path, op in protected:
        assert op.get("security"), (method, path)
        assert error_schema(op, "401") == ERROR_REF, (method, path)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/cameras/{camera_id}"),
        ("patch", "/api/cameras/{camera_id}"),
        ("delete", "/api/cameras/{camera_id}"),
        ("get", "/api/cameras/{camera_id}/status"),
        ("get", "/api/models/{name}"),
        ("get", "/api/events/{event_id}"),
        ("patch", "/api/alert-rules/{rule_id}"),
        ("delete", "/api/webhooks/{webhook_id}"),
        ("post", "/api/alerts/{alert_id}/retry"),
    ],
)
async def test_routes_that_look_something_up_document_404(
    spec: dict[str, Any], method: str, path: str
) -> None:
    assert error_schema(spec["paths"][path][method], "404") == ERROR_REF


async def test_bodies_document_413_and_every_422_is_argus_error_body(spec: dict[str, Any]) -> None:
    for method, path, op in operations(spec):
        if "requestBody" in op:
            assert error_schema(op, "413") == ERROR_REF, (method, path)
        if "requestBody" in op or op.get("parameters"):
            assert error_schema(op, "422") == ERROR_REF, (method, path)
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert schemas["ErrorBody"]["properties"]["detail"]["type"] == "string"


async def test_conflicts_unreadable_bodies_and_unavailable_parts_are_documented(spec: dict[str, Any]) -> None:
    paths = spec["paths"]
    for path, method in [
        ("/api/cameras", "post"),
        ("/api/cameras/{camera_id}", "patch"),
        ("/api/webhooks", "post"),
        ("/api/webhooks/{webhook_id}", "patch"),
        ("/api/alert-rules", "post"),
        ("/api/alert-rules/{rule_id}", "patch"),
    ]:
        assert error_schema(paths[path][method], "409") == ERROR_REF, (method, path)
        assert error_schema(paths[path][method], "400") == ERROR_REF, (method, path)
    assert error_schema(paths["/api/webhooks/{webhook_id}/test"]["post"], "503") == ERROR_REF


async def test_unreadable_body_is_the_documented_400(app_client: httpx.AsyncClient) -> None:
    r = await app_client.post("/api/events", content=b"\xff", headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 422) and isinstance(r.json()["detail"], str)


async def test_metrics_is_documented_and_served_as_prometheus_text(
    spec: dict[str, Any], app_client: httpx.AsyncClient
) -> None:
    content = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/plain"]
    r = await app_client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert "# HELP" in r.text


async def test_request_validation_answers_the_documented_error_shape(app_client: httpx.AsyncClient) -> None:
    r = await app_client.post("/api/cameras", json={"url": "rtsp://127.0.0.1:9/a"})
    assert r.status_code == 422
    body = r.json()
    assert body["field"] == "name" and isinstance(body["detail"], str) and "name" in body["detail"]
    assert body["errors"][0]["loc"] == ["body", "name"]
    r = await app_client.get("/api/events", params={"limit": 0})
    assert r.status_code == 422 and r.json()["field"] == "limit"


async def test_413_has_the_documented_error_shape(app_client: httpx.AsyncClient) -> None:
    big = b'{"type": "x", "data": {"k": "' + b"x" * 2_000_000 + b'"}}'
    r = await app_client.post("/api/events", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and isinstance(r.json()["detail"], str)


async def test_401_and_429_have_the_documented_error_shape(app_client: httpx.AsyncClient) -> None:
    bad = {"Authorization": f"Bearer not-{API_KEY}"}
    r = await app_client.get("/api/cameras", headers=bad)
    assert r.status_code == 401 and isinstance(r.json()["detail"], str)
    for _ in range(40):  # past the failed-key throttle
        r = await app_client.get("/api/cameras", headers=bad)
    assert r.status_code == 429 and isinstance(r.json()["detail"], str)
