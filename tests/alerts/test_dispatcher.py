"""WebhookDispatcher against a real HTTP receiver: priority, digest, retries, dead, outages, signatures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

from app.alerts.dispatcher import DispatchPolicy, WebhookDispatcher
from app.alerts.engine import AlertEngine
from app.models import AlertStatus
from tests.alerts.conftest import FAST, Sessionmaker, add_rule, add_webhook, alerts, event
from tests.support.waiting import eventually
from tests.support.webhook_receiver import Answer, WebhookReceiver


@asynccontextmanager
async def running(
    db: Sessionmaker, policy: DispatchPolicy = FAST, digest_interval_s: float = 3600
) -> AsyncIterator[tuple[AlertEngine, WebhookDispatcher]]:
    async with (
        WebhookDispatcher(db, policy) as dispatcher,
        AlertEngine(db, digest_interval_s=digest_interval_s, on_alert=dispatcher.wake) as engine,
    ):
        yield engine, dispatcher


async def raise_events(engine: AlertEngine, *events: object) -> None:
    for e in events:
        await engine.consider(e)  # type: ignore[arg-type]
    await engine.idle()


async def wait_status(db: Sessionmaker, status: AlertStatus, n: int, timeout: float = 10.0) -> None:
    async def reached() -> bool:
        return sum(r.status == status for r in await alerts(db)) >= n

    await eventually(reached, timeout, interval=0.02, what=f"{n} alerts reaching {status}")


class TestPriority:
    async def test_high_goes_out_at_once_while_low_waits_for_the_digest(
        self, db: Sessionmaker, receiver: WebhookReceiver
    ) -> None:
        await add_rule(db, [await add_webhook(db, receiver)], dedup_window_s=0)
        async with running(db, digest_interval_s=3600) as (engine, _):
            await raise_events(
                engine, event(camera_id=2, severity="low"), event(camera_id=1, severity="high")
            )
            await receiver.wait_until(lambda r: len(r.delivered) == 1)
            await wait_status(db, AlertStatus.delivered, 1)
            rows = {r.camera_id: r for r in await alerts(db)}
        assert receiver.delivered[0].json["event"]["severity"] == "high"
        assert rows[1].status == AlertStatus.delivered
        assert rows[2].status == AlertStatus.pending  # the digest is an hour away
        assert receiver.all_signed()

    async def test_low_alerts_arrive_as_one_digest_post(
        self, db: Sessionmaker, receiver: WebhookReceiver
    ) -> None:
        await add_rule(db, [await add_webhook(db, receiver)], dedup_window_s=0)
        async with running(db, digest_interval_s=1.0) as (engine, _):
            await raise_events(engine, *[event(camera_id=c, severity="low") for c in range(1, 7)])
            await wait_status(db, AlertStatus.delivered, 6)
        assert len(receiver.received) == 1
        post = receiver.received[0]
        body = post.json
        assert body["type"] == "digest" and body["count"] == 6
        assert sorted(a["camera"]["id"] for a in body["alerts"]) == [1, 2, 3, 4, 5, 6]
        assert post.key == body["id"] == (await alerts(db))[0].digest_id
        assert receiver.all_signed()


class TestRetries:
    async def test_500_500_200_is_delivered_once_after_three_attempts(
        self, db: Sessionmaker, receiver: WebhookReceiver
    ) -> None:
        receiver.script(500, 500, 200)
        await add_rule(db, [await add_webhook(db, receiver)])
        async with running(db) as (engine, _):
            await raise_events(engine, event())
            await wait_status(db, AlertStatus.delivered, 1)
        (row,) = await alerts(db)
        assert row.attempts == 3 and row.last_status_code == 200
        assert [r.status for r in receiver.received] == [500, 500, 200]
        assert {r.key for r in receiver.received} == {row.id}
        assert receiver.all_signed()

    async def test_400_is_dead_with_the_receivers_answer_and_not_retried(
        self, db: Sessionmaker, receiver: WebhookReceiver
    ) -> None:
        receiver.script(Answer(400, body="unknown camera"))
        await add_rule(db, [await add_webhook(db, receiver)])
        async with running(db) as (engine, _):
            await raise_events(engine, event())
            await wait_status(db, AlertStatus.dead, 1)
        (row,) = await alerts(db)
        assert row.attempts == 1 and row.last_status_code == 400
        assert row.last_error == "HTTP 400: unknown camera"
        assert len(receiver.received) == 1

    async def test_429_retry_after_is_honoured(self, db: Sessionmaker, receiver: WebhookReceiver) -> None:
        receiver.script(Answer(429, {"Retry-After": "1"}), 200)
        await add_rule(db, [await add_webhook(db, receiver)])
        async with running(db) as (engine, _):
            await raise_events(engine, event())
            await wait_status(db, AlertStatus.delivered, 1)
        first, second = receiver.received
        # Retry-After beyond the in-process cap: the row is rescheduled no sooner than the receiver asked
        assert second.received_at - first.received_at >= 1.0
        assert (await alerts(db))[0].attempts == 2

    async def test_connection_refused_is_retried_until_the_receiver_comes_up(
        self, db: Sessionmaker, receiver: WebhookReceiver
    ) -> None:
        receiver.stop()
        await add_rule(db, [await add_webhook(db, receiver)])
        async with running(db) as (engine, _):
            await raise_events(engine, event())
            await wait_status(db, AlertStatus.retrying, 1)
            receiver.start()
            await wait_status(db, AlertStatus.delivered, 1)
        (row,) = await alerts(db)
        assert row.attempts >= 2 and "ConnectError" in (row.last_error or "ConnectError")
        assert receiver.delivered_alert_ids() == {row.id}

    async def test_expired_delivery_goes_dead(self, db: Sessionmaker, receiver: WebhookReceiver) -> None:
        receiver.default = Answer(503)
        await add_rule(db, [await add_webhook(db, receiver)])
        async with (
            WebhookDispatcher(db, FAST) as dispatcher,
            AlertEngine(db, dead_after_s=0.2, on_alert=dispatcher.wake) as engine,
        ):
            await raise_events(engine, event())
            await wait_status(db, AlertStatus.dead, 1)
        (row,) = await alerts(db)
        assert row.last_error is not None and row.last_error.startswith("gave up after")


class TestOutage:
    async def test_fifty_alerts_raised_while_down_are_all_delivered_when_back(
        self, db: Sessionmaker, receiver: WebhookReceiver
    ) -> None:
        receiver.stop()
        await add_rule(db, [await add_webhook(db, receiver)], dedup_window_s=0)
        policy = replace(FAST, breaker_reset_s=0.2)
        async with running(db, policy) as (engine, dispatcher):
            await raise_events(engine, *[event(camera_id=i % 8) for i in range(50)])
            await wait_status(db, AlertStatus.retrying, 5)
            assert dispatcher.breakers[1].state != "closed"  # it stopped hammering
            receiver.start()
            await wait_status(db, AlertStatus.delivered, 50, timeout=20)
        rows = await alerts(db)
        assert receiver.delivered_alert_ids() == {r.id for r in rows}
        assert receiver.all_signed()
