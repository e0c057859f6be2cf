"""/api/webhooks, /api/alert-rules, /api/alerts through the app with its lifespan (real DB, real receiver)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from app.events.types import NewEvent
from app.lifespan import Runtime
from tests.alerts.conftest import event
from tests.support.waiting import eventually
from tests.support.webhook_receiver import Answer, WebhookReceiver


def runtime(client: httpx.AsyncClient) -> Runtime:
    app: FastAPI = client._transport.app  # type: ignore[attr-defined]
    return app.state.runtime  # type: ignore[no-any-return]


async def make_webhook(client: httpx.AsyncClient, receiver: WebhookReceiver, **kw: Any) -> dict[str, Any]:
    body = {"name": "pager", "url": receiver.url, "secret": receiver.secret, **kw}
    r = await client.post("/api/webhooks", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def publish(client: httpx.AsyncClient, *events: NewEvent) -> None:
    rt = runtime(client)
    for e in events:
        rt.bus.publish(e)
    await rt.bus.drain()
    await rt.alerts.idle()


async def wait_for_status(client: httpx.AsyncClient, status: str, n: int, timeout: float = 10.0) -> list[Any]:
    async def reached() -> list[Any] | None:
        items = (await client.get("/api/alerts", params={"status": status})).json()["items"]
        return items if len(items) >= n else None  # type: ignore[no-any-return]

    return await eventually(reached, timeout, what=f"{n} alerts {status}")  # type: ignore[return-value]


class TestWebhooks:
    async def test_crud_never_returns_the_secret(
        self, api_client: httpx.AsyncClient, receiver: WebhookReceiver
    ) -> None:
        created = await make_webhook(api_client, receiver, timeout_s=3)
        assert "secret" not in created and created["timeout_s"] == 3 and created["enabled"] is True
        listed = (await api_client.get("/api/webhooks")).json()
        assert [w["id"] for w in listed] == [created["id"]]
        assert receiver.secret not in str(listed)
        patched = await api_client.patch(f"/api/webhooks/{created['id']}", json={"enabled": False})
        assert patched.json()["enabled"] is False and "secret" not in patched.json()
        assert (await api_client.delete(f"/api/webhooks/{created['id']}")).status_code == 204
        assert (await api_client.get(f"/api/webhooks/{created['id']}")).status_code == 404

    async def test_url_must_be_http_or_https(self, api_client: httpx.AsyncClient) -> None:
        r = await api_client.post(
            "/api/webhooks", json={"name": "x", "url": "ftp://h/x", "secret": "12345678"}
        )
        assert r.status_code == 422
        assert r.json()["errors"][0]["loc"][-1] == "url"

    async def test_url_credentials_are_masked(self, api_client: httpx.AsyncClient) -> None:
        r = await api_client.post(
            "/api/webhooks", json={"name": "x", "url": "https://bot:tok3n@h.example/x", "secret": "12345678"}
        )
        assert r.json()["url"] == "https://bot:****@h.example/x"

    async def test_duplicate_name_is_409(
        self, api_client: httpx.AsyncClient, receiver: WebhookReceiver
    ) -> None:
        await make_webhook(api_client, receiver)
        r = await api_client.post(
            "/api/webhooks", json={"name": "pager", "url": receiver.url, "secret": "12345678"}
        )
        assert r.status_code == 409 and r.json()["field"] == "name"

    async def test_test_endpoint_sends_a_signed_payload_and_returns_the_status(
        self, api_client: httpx.AsyncClient, receiver: WebhookReceiver
    ) -> None:
        hook = await make_webhook(api_client, receiver)
        receiver.script(Answer(418, body="teapot"))
        r = await api_client.post(f"/api/webhooks/{hook['id']}/test")
        assert r.status_code == 200
        assert r.json()["status_code"] == 418 and r.json()["ok"] is False
        r = await api_client.post(f"/api/webhooks/{hook['id']}/test")
        assert r.json()["status_code"] == 200 and r.json()["ok"] is True
        assert [p.json["type"] for p in receiver.received] == ["test", "test"]
        assert receiver.all_signed()

    async def test_test_endpoint_reports_an_unreachable_receiver(
        self, api_client: httpx.AsyncClient, receiver: WebhookReceiver
    ) -> None:
        hook = await make_webhook(api_client, receiver)
        receiver.stop()
        body = (await api_client.post(f"/api/webhooks/{hook['id']}/test")).json()
        assert body["ok"] is False and body["status_code"] is None and "ConnectError" in body["error"]

    async def test_webhook_used_by_a_rule_cannot_be_deleted(
        self, api_client: httpx.AsyncClient, receiver: WebhookReceiver
    ) -> None:
        hook = await make_webhook(api_client, receiver)
        await api_client.post("/api/alert-rules", json={"name": "r", "webhook_ids": [hook["id"]]})
        assert (await api_client.delete(f"/api/webhooks/{hook['id']}")).status_code == 409


class TestRules:
    async def test_an_edited_url_takes_effect_at_the_next_alert(
        self, api_client: httpx.AsyncClient, receiver: WebhookReceiver
    ) -> None:
        # given: a webhook that has already delivered (the dispatcher holds it in its cache)
        hook = await make_webhook(api_client, receiver)
        rule = {"name": "r", "webhook_ids": [hook["id"]], "dedup_window_s": 0}
        assert (await api_client.post("/api/alert-rules", json=rule)).status_code == 201
        await publish(api_client, event(camera_id=None))
        await receiver.wait_until(lambda rc: len(rc.delivered) == 1)
        with WebhookReceiver(secret=receiver.secret) as moved:
            # when: its URL is edited through the API
            r = await api_client.patch(f"/api/webhooks/{hook['id']}", json={"url": moved.url})
            assert r.status_code == 200, r.text
            second = event(camera_id=None)
            await publish(api_client, second)
            # then: the next alert goes to the new URL, not the cached old one
            await moved.wait_until(lambda rc: len(rc.delivered) == 1)
            assert moved.delivered[0].json["event"]["id"] == second.id and moved.all_signed()
        assert len(receiver.delivered) == 1

    async def test_crud_with_defaults(self, api_client: httpx.AsyncClient, receiver: WebhookReceiver) -> None:
        hook = await make_webhook(api_client, receiver)
        r = await api_client.post("/api/alert-rules", json={"name": "all high", "webhook_ids": [hook["id"]]})
        assert r.status_code == 201, r.text
        rule = r.json()
        assert rule["dedup_window_s"] == 15 and rule["min_severity"] == "high"
        assert rule["camera_ids"] == [] and rule["event_types"] == []
        r = await api_client.patch(f"/api/alert-rules/{rule['id']}", json={"min_severity": "critical"})
        assert r.json()["min_severity"] == "critical"
        assert len((await api_client.get("/api/alert-rules")).json()) == 1
        assert (await api_client.delete(f"/api/alert-rules/{rule['id']}")).status_code == 204
        assert (await api_client.get(f"/api/alert-rules/{rule['id']}")).status_code == 404

    async def test_unknown_webhook_is_422_naming_webhook_ids(self, api_client: httpx.AsyncClient) -> None:
        r = await api_client.post("/api/alert-rules", json={"name": "r", "webhook_ids": [42]})
        assert r.status_code == 422
        assert r.json()["field"] == "webhook_ids" and "42" in r.json()["detail"]

    async def test_unknown_camera_and_bad_severity_are_422(
        self, api_client: httpx.AsyncClient, receiver: WebhookReceiver
    ) -> None:
        hook = await make_webhook(api_client, receiver)
        r = await api_client.post(
            "/api/alert-rules", json={"name": "r", "webhook_ids": [hook["id"]], "camera_ids": [9]}
        )
        assert r.status_code == 422 and r.json()["field"] == "camera_ids"
        r = await api_client.post(
            "/api/alert-rules", json={"name": "r", "webhook_ids": [hook["id"]], "min_severity": "urgent"}
        )
        assert r.status_code == 422 and r.json()["errors"][0]["loc"][-1] == "min_severity"

    async def test_auth_is_required(self, api_client: httpx.AsyncClient) -> None:
        for path in ("/api/webhooks", "/api/alert-rules", "/api/alerts"):
            r = await api_client.get(path, headers={"Authorization": "Bearer wrong"})
            assert r.status_code == 401


class TestAlerts:
    async def test_rule_made_through_the_api_alerts_the_receiver(
        self, api_client: httpx.AsyncClient, receiver: WebhookReceiver
    ) -> None:
        hook = await make_webhook(api_client, receiver)
        await api_client.post("/api/alert-rules", json={"name": "r", "webhook_ids": [hook["id"]]})
        e = event(camera_id=None, severity="critical")
        await publish(api_client, e)
        (item,) = await wait_for_status(api_client, "delivered", 1)
        assert item["event_id"] == e.id and item["attempts"] == 1 and item["webhook_id"] == hook["id"]
        assert receiver.delivered[0].key == item["id"]

    async def test_filters_and_cursor_pages(
        self, api_client: httpx.AsyncClient, receiver: WebhookReceiver
    ) -> None:
        hook = await make_webhook(api_client, receiver)
        await api_client.post(
            "/api/alert-rules", json={"name": "r", "webhook_ids": [hook["id"]], "min_severity": "low"}
        )
        await publish(api_client, *[event(camera_id=None, type_=f"t{i}", severity="low") for i in range(5)])
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2, "webhook_id": hook["id"], "status": "pending"}
            if cursor:
                params["cursor"] = cursor
            page = (await api_client.get("/api/alerts", params=params)).json()
            seen += [a["id"] for a in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert len(seen) == len(set(seen)) == 5
        assert (await api_client.get("/api/alerts", params={"status": "delivered"})).json()["items"] == []
        assert (await api_client.get("/api/alerts", params={"camera_id": 3})).json()["items"] == []
        future = "2099-01-01T00:00:00Z"
        assert (await api_client.get("/api/alerts", params={"since": future})).json()["items"] == []
        r = await api_client.get("/api/alerts", params={"cursor": "garbage"})
        assert r.status_code == 422 and r.json()["field"] == "cursor"

    async def test_retry_a_dead_alert_and_409_otherwise(
        self, api_client: httpx.AsyncClient, receiver: WebhookReceiver
    ) -> None:
        hook = await make_webhook(api_client, receiver)
        await api_client.post("/api/alert-rules", json={"name": "r", "webhook_ids": [hook["id"]]})
        receiver.script(Answer(410, body="gone"))
        await publish(api_client, event(camera_id=None))
        (dead,) = await wait_for_status(api_client, "dead", 1)
        assert dead["last_error"] == "HTTP 410: gone"
        r = await api_client.post(f"/api/alerts/{dead['id']}/retry")
        assert r.status_code == 200 and r.json()["status"] in {"pending", "delivered"}
        (done,) = await wait_for_status(api_client, "delivered", 1)
        assert done["id"] == dead["id"] and done["attempts"] == 2
        r = await api_client.post(f"/api/alerts/{dead['id']}/retry")
        assert r.status_code == 409
        assert (await api_client.post("/api/alerts/nope/retry")).status_code == 404
        assert [p.key for p in receiver.received] == [dead["id"], dead["id"]]

    async def test_openapi_documents_the_routes(self, api_client: httpx.AsyncClient) -> None:
        spec = (await api_client.get("/openapi.json")).json()
        for path in (
            "/api/webhooks",
            "/api/webhooks/{webhook_id}/test",
            "/api/alert-rules",
            "/api/alerts/{alert_id}/retry",
        ):
            assert path in spec["paths"]
        create = spec["components"]["schemas"]["WebhookCreate"]
        assert create["examples"][0]["url"].startswith("https://")
        assert "secret" not in spec["components"]["schemas"]["WebhookRead"]["properties"]
