"""A delivery never crashes its task: a bad URL stored in the database, a denied destination or any
unexpected exception becomes a recorded failed attempt with its error (permanent ones: dead at once)."""

from __future__ import annotations

from dataclasses import replace

import httpx

from app.alerts.dispatcher import WebhookDispatcher
from app.alerts.engine import AlertEngine
from app.kit.urls import parse_networks
from app.models import AlertStatus, Webhook
from tests.alerts.conftest import FAST, Sessionmaker, add_rule, add_webhook, alerts, event
from tests.alerts.test_dispatcher import raise_events, running, wait_status
from tests.support.webhook_receiver import Answer, WebhookReceiver


async def add_raw_webhook(db: Sessionmaker, url: str, secret: str) -> int:
    """Straight into the database, past every API check."""
    async with db.begin() as s:
        hook = Webhook(name="raw", url=url, secret=secret, timeout_s=2.0)
        s.add(hook)
        await s.flush()
        return hook.id


LOOPBACK_DENIED = replace(FAST, deny_networks=parse_networks("169.254.0.0/16,127.0.0.0/8,::1/128"))


async def test_a_crlf_url_stored_in_the_database_goes_dead_with_its_error(
    db: Sessionmaker, receiver: WebhookReceiver
) -> None:
    # given: a webhook row whose URL never passed the API's checks (inserted directly)
    hook = await add_raw_webhook(db, receiver.url + "\r\nX-Injected: yes", receiver.secret)
    await add_rule(db, [hook])
    # when: an alert is raised for it
    async with running(db) as (engine, _):
        await raise_events(engine, event())
        await wait_status(db, AlertStatus.dead, 1)
    # then: one failed attempt, dead at once with the reason, nothing sent
    (row,) = await alerts(db)
    assert row.attempts == 1 and row.last_status_code is None
    assert row.last_error is not None and row.last_error.startswith("invalid webhook URL")
    assert receiver.received == []


async def test_a_name_resolving_into_a_denied_network_is_a_dead_delivery(
    db: Sessionmaker, receiver: WebhookReceiver
) -> None:
    hook = await add_raw_webhook(db, receiver.url.replace("127.0.0.1", "localhost"), receiver.secret)
    await add_rule(db, [hook])
    async with running(db, LOOPBACK_DENIED) as (engine, _):
        await raise_events(engine, event())
        await wait_status(db, AlertStatus.dead, 1)
    (row,) = await alerts(db)
    assert row.attempts == 1 and "denied network" in (row.last_error or "")
    assert receiver.received == []


class Exploding(httpx.AsyncBaseTransport):
    """A transport failing in a way no one planned for (not an httpx error)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise RuntimeError("boom\x00 with a NUL and\nnewline")


async def test_any_exception_is_a_recorded_failed_attempt(
    db: Sessionmaker, receiver: WebhookReceiver
) -> None:
    await add_rule(db, [await add_webhook(db, receiver)])
    async with (
        WebhookDispatcher(db, FAST, transport=Exploding()) as dispatcher,
        AlertEngine(db, digest_interval_s=3600, on_alert=dispatcher.wake) as engine,
    ):
        await raise_events(engine, event())
        await wait_status(db, AlertStatus.retrying, 1)
    (row,) = await alerts(db)
    assert row.attempts >= 1
    assert row.last_error == "internal error: RuntimeError: boom  with a NUL and newline"


async def test_a_refusals_body_is_cut_to_a_short_excerpt(db: Sessionmaker, receiver: WebhookReceiver) -> None:
    receiver.script(Answer(400, body="<html>" + "x" * 20_000 + "</html>"))
    await add_rule(db, [await add_webhook(db, receiver)])
    async with running(db) as (engine, _):
        await raise_events(engine, event())
        await wait_status(db, AlertStatus.dead, 1)
    (row,) = await alerts(db)
    assert row.last_error is not None and row.last_error.startswith("HTTP 400: <html>xxx")
    assert len(row.last_error) <= 200
