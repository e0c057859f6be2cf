"""Standard Webhooks: every delivery verifies with the maintained `standardwebhooks` library (real
deliveries through the API: the `/test` send and an alert from a rule), for `whsec_` and plain secrets."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from app.alerts.signing import encode, signed_headers, standard_key
from tests.alerts.conftest import event
from tests.alerts.test_endpoints import make_webhook, publish, wait_for_status
from tests.support.webhook_receiver import WebhookReceiver

WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def library_for(secret: str) -> Webhook:
    """How a receiver builds the verifier: the `whsec_` string as is, any other secret as bytes."""
    return Webhook(secret) if secret.startswith("whsec_") else Webhook(secret.encode())


class TestHeaders:
    @pytest.mark.parametrize("secret", [WHSEC, "a-plain-shared-secret"])
    def test_the_library_verifies_what_argus_signs(self, secret: str) -> None:
        body = encode({"type": "alert", "id": "abc"})
        headers = signed_headers(secret, body, "abc", "alert")
        assert headers["webhook-id"] == headers["Idempotency-Key"] == "abc"
        assert library_for(secret).verify(body, headers) == {"type": "alert", "id": "abc"}

    def test_a_changed_body_or_id_is_refused(self) -> None:
        body = encode({"id": "abc"})
        headers = signed_headers(WHSEC, body, "abc", "alert")
        with pytest.raises(WebhookVerificationError):
            library_for(WHSEC).verify(body + b" ", headers)
        with pytest.raises(WebhookVerificationError):
            library_for(WHSEC).verify(body, {**headers, "webhook-id": "other"})

    def test_a_whsec_secret_keys_with_its_decoded_bytes(self) -> None:
        assert standard_key(WHSEC) == b"0123456789abcdef0123456789abcdef"
        assert standard_key("plain-secret") == b"plain-secret"
        with pytest.raises(ValueError):
            standard_key("whsec_not*base64!")


class TestDeliveries:
    async def test_test_and_alert_deliveries_verify_with_the_library(
        self, api_client: httpx.AsyncClient
    ) -> None:
        with WebhookReceiver(secret=WHSEC) as receiver:
            hook = await make_webhook(api_client, receiver)
            assert (await api_client.post(f"/api/webhooks/{hook['id']}/test")).json()["ok"]
            await api_client.post("/api/alert-rules", json={"name": "r", "webhook_ids": [hook["id"]]})
            await publish(api_client, event(camera_id=None, severity="critical"))
            await wait_for_status(api_client, "delivered", 1)
            verifier = library_for(WHSEC)
            kinds = [verifier.verify(r.body, r.headers)["type"] for r in receiver.received]
            assert sorted(kinds) == ["alert", "test"]
            assert all(r.signature_ok for r in receiver.received)  # the Argus header still verifies too

    async def test_a_whsec_secret_that_is_not_base64_is_422(self, api_client: httpx.AsyncClient) -> None:
        body = {"name": "h", "url": "http://127.0.0.1:9/h", "secret": "whsec_not*base64!"}
        r = await api_client.post("/api/webhooks", json=body)
        assert r.status_code == 422 and r.json()["field"] == "secret"
        assert "not*base64" not in json.dumps(r.json())  # the secret is never echoed
