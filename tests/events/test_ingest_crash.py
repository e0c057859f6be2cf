"""Crash: `argus serve` is SIGKILLed in the middle of a burst of ingests; after a restart every event
that was answered 202 is stored with its alert, and no alert points at an event that is not."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import API_KEY, AUTH
from tests.support.server import argus_serve
from tests.support.waiting import wait_until
from tests.support.webhook_receiver import WebhookReceiver

SERVE_ENV = {
    "ARGUS_API_KEYS": API_KEY,
    "ARGUS_WEBHOOK_CONCURRENCY": "2",
    "ARGUS_WEBHOOK_BREAKER_RESET_S": "0.5",
}
CLIENTS = 8
KILL_AFTER = 100  # answered 202s

pytestmark = pytest.mark.slow


class Burst:
    """CLIENTS threads posting events 20 ms apart until the server goes away."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.accepted: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._post, args=(n,), daemon=True) for n in range(CLIENTS)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        for t in self.threads:
            t.join(30)

    def _post(self, n: int) -> None:
        with httpx.Client(base_url=self.url, headers=AUTH, timeout=10) as api:
            for i in range(1000):
                try:
                    r = api.post(
                        "/api/events", json={"type": f"door_{n}", "severity": "high", "data": {"i": i}}
                    )
                except httpx.TransportError:
                    return  # killed: this one was never answered
                if r.status_code == 202:
                    with self.lock:
                        self.accepted.append(r.json()["id"])
                time.sleep(0.02)


def test_sigkill_mid_burst_keeps_every_event_answered_202(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    log = tmp_path / "argus.log"
    with WebhookReceiver() as receiver:
        with (
            argus_serve(data_dir, log, **SERVE_ENV) as (proc, url),
            httpx.Client(base_url=url, headers=AUTH) as api,
        ):
            # given a rule that alerts on every event
            hook = api.post(
                "/api/webhooks", json={"name": "r", "url": receiver.url, "secret": receiver.secret}
            )
            rule = {"name": "all", "webhook_ids": [hook.json()["id"]], "dedup_window_s": 0}
            assert api.post("/api/alert-rules", json=rule).status_code == 201
            # when the server is killed while clients are posting
            burst = Burst(url)
            burst.start()
            wait_until(lambda: len(burst.accepted) >= KILL_AFTER, 60, what="the burst getting going")
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            burst.join()
        accepted = set(burst.accepted)
        assert len(accepted) >= KILL_AFTER
        # then after a restart every accepted event is there
        with (
            argus_serve(data_dir, log, **SERVE_ENV) as (_, url),
            httpx.Client(base_url=url, headers=AUTH) as api,
        ):
            stored = {e["id"] for e in pages(api, "/api/events")}
            assert accepted - stored == set()
            alerted = {a["event_id"] for a in pages(api, "/api/alerts")}
            assert alerted <= stored, "an alert points at a missing event"
            assert accepted - alerted == set(), "an event answered 202 lost its alert"


def pages(api: httpx.Client, path: str) -> list[dict[str, str]]:
    items: list[dict[str, str]] = []
    cursor = None
    while True:
        page = api.get(path, params={"limit": 500, **({"cursor": cursor} if cursor else {})}).json()
        items += page["items"]
        if not (cursor := page["next_cursor"]):
            return items
