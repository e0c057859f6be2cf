"""Crash: `argus serve` as a subprocess is SIGKILLed mid-delivery; after a restart every alert arrives.

Duplicates are allowed (at least once) and carry the same Idempotency-Key; none may be missing.
"""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from tests.conftest import API_KEY, AUTH
from tests.support.server import argus_serve
from tests.support.waiting import wait_until
from tests.support.webhook_receiver import WebhookReceiver

BURST = 60

pytestmark = pytest.mark.slow


SERVE_ENV = {
    "ARGUS_API_KEYS": API_KEY,
    "ARGUS_WEBHOOK_CONCURRENCY": "2",  # a slow trickle, so the kill lands mid-delivery
    "ARGUS_WEBHOOK_BREAKER_RESET_S": "0.5",
}


def test_sigkill_mid_delivery_then_restart_delivers_every_alert(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    log = tmp_path / "argus.log"
    with WebhookReceiver() as receiver:
        receiver.delay_s = 0.1
        with (
            argus_serve(data_dir, log, **SERVE_ENV) as (proc, url),
            httpx.Client(base_url=url, headers=AUTH) as api,
        ):
            # given a webhook and a rule made through the API
            hook = api.post(
                "/api/webhooks", json={"name": "r", "url": receiver.url, "secret": receiver.secret}
            )
            rule = {"name": "all", "webhook_ids": [hook.json()["id"]], "dedup_window_s": 0}
            assert api.post("/api/alert-rules", json=rule).status_code == 201
            # when a burst of events is ingested and the server is killed mid-delivery
            event_ids = set()
            for i in range(BURST):
                r = api.post("/api/events", json={"type": f"door_{i % 4}", "severity": "high"})
                assert r.status_code == 202, r.text
                event_ids.add(r.json()["id"])

            def committed() -> bool:
                return len(api.get("/api/alerts", params={"limit": 500}).json()["items"]) == BURST

            wait_until(committed, 30, what="every alert committed to the outbox")
            wait_until(lambda: len(receiver.received) >= 5, 30, what="deliveries before the kill")
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        delivered_before = len(receiver.delivered_alert_ids())
        assert delivered_before < BURST, "the kill came too late to test recovery"
        # then a restarted server resumes the outbox
        receiver.delay_s = 0.0
        with (
            argus_serve(data_dir, log, **SERVE_ENV) as (_, url),
            httpx.Client(base_url=url, headers=AUTH) as api,
        ):
            rows = api.get("/api/alerts", params={"limit": 500}).json()["items"]
            assert len(rows) == BURST
            alert_ids = {a["id"] for a in rows}
            wait_until(
                lambda: receiver.delivered_alert_ids() >= alert_ids, 60, what="all alerts after restart"
            )
            wait_until(
                lambda: all(
                    a["status"] == "delivered"
                    for a in api.get("/api/alerts", params={"limit": 500}).json()["items"]
                ),
                30,
                what="every row marked delivered",
            )
    received = receiver.received
    assert {r.json["event"]["id"] for r in received if r.ok} == event_ids
    assert all(r.key == r.json["id"] for r in received)  # a duplicate carries the same Idempotency-Key
    assert receiver.all_signed()
