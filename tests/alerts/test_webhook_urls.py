"""Webhook URLs at the API edge: control characters, denied literal hosts (any spelling), and `/test`
answering clearly (never a 500) for a URL that is bad in the database."""

from __future__ import annotations

import httpx
import pytest

from app.models import Webhook
from tests.alerts.test_endpoints import make_webhook, runtime
from tests.support.webhook_receiver import Answer, WebhookReceiver

SECRET = "s3cret-webhook"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:9/a\r\nX-Injected: yes", "control characters"),
        ("http://127.0.0.1:9/a b", "control characters or whitespace"),
        ("http://h/\t", "control characters"),
        ("http://h/" + "a" * 2100, "2048"),
        ("http://169.254.169.254/latest/meta-data/", "denied network"),
        ("http://2852039166/", "denied network"),  # 169.254.169.254 as one integer
        ("http://0xa9fea9fe/", "denied network"),
        ("http://[fd00:ec2::254]/", "denied network"),
        ("http://[::ffff:169.254.169.254]/", "denied network"),
    ],
)
async def test_bad_or_denied_urls_are_422_naming_the_field(
    api_client: httpx.AsyncClient, url: str, reason: str
) -> None:
    r = await api_client.post("/api/webhooks", json={"name": "x", "url": url, "secret": SECRET})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "url" and reason in r.json()["detail"]


async def test_a_patch_into_a_denied_network_is_422(
    api_client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    hook = await make_webhook(api_client, receiver)
    r = await api_client.patch(f"/api/webhooks/{hook['id']}", json={"url": "http://169.254.169.254/"})
    assert r.status_code == 422 and r.json()["field"] == "url"


async def test_loopback_and_lan_names_are_allowed_by_default(api_client: httpx.AsyncClient) -> None:
    for i, url in enumerate(["http://localhost:8123/api/webhook/x", "http://192.168.1.20/", "http://[::1]/"]):
        r = await api_client.post("/api/webhooks", json={"name": f"h{i}", "url": url, "secret": SECRET})
        assert r.status_code == 201, r.text


async def test_test_endpoint_on_a_url_bad_in_the_database_is_a_clear_error(
    api_client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    # given: a webhook whose URL never passed the API's checks (written straight to the database)
    async with runtime(api_client).sessionmaker.begin() as session:
        hook = Webhook(name="raw", url=receiver.url + "\r\nX-Injected: yes", secret=SECRET, timeout_s=2.0)
        session.add(hook)
        await session.flush()
        hook_id = hook.id
    # when / then: /test answers, with the reason, and nothing is sent
    r = await api_client.post(f"/api/webhooks/{hook_id}/test")
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is False and r.json()["error"].startswith("invalid webhook URL")
    assert receiver.received == []


async def test_test_endpoint_shows_only_a_short_excerpt_of_a_refusal(
    api_client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    hook = await make_webhook(api_client, receiver)
    receiver.script(Answer(403, body="secret-internal-page " * 1000))
    r = await api_client.post(f"/api/webhooks/{hook['id']}/test")
    body = r.json()
    assert body["status_code"] == 403 and body["error"].startswith("HTTP 403: secret-internal-page")
    assert len(body["error"]) <= 200


async def test_a_url_sent_back_as_shown_keeps_its_credentials(api_client: httpx.AsyncClient) -> None:
    url = "https://bot:tok3n@hooks.example.com/x"
    hook = (await api_client.post("/api/webhooks", json={"name": "h", "url": url, "secret": SECRET})).json()
    r = await api_client.patch(f"/api/webhooks/{hook['id']}", json={"url": hook["url"], "enabled": False})
    assert r.status_code == 200, r.text
    async with runtime(api_client).sessionmaker() as session:
        assert (await session.get(Webhook, hook["id"])).url == url  # type: ignore[union-attr]
