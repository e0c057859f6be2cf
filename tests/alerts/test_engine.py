"""AlertEngine on a real SQLite outbox: rules, dedup persisted as suppressed_count, priority, updates."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.alerts.engine import AlertEngine
from app.events.types import Phase
from app.kit.severity import Severity
from app.models import AlertPriority, AlertStatus, Camera
from tests.alerts.conftest import FakeClock, Sessionmaker, add_rule, add_webhook, alerts, event
from tests.support.webhook_receiver import WebhookReceiver


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def engine(db: Sessionmaker, clock: FakeClock) -> AsyncIterator[AlertEngine]:
    async with AlertEngine(db, digest_interval_s=60, clock=clock) as e:
        yield e


async def consider(engine: AlertEngine, *events: object) -> None:
    for e in events:
        await engine.consider(e)  # type: ignore[arg-type]
    await engine.idle()


class TestDedup:
    async def test_twenty_events_in_fifteen_seconds_make_one_alert_counting_nineteen(
        self, db: Sessionmaker, engine: AlertEngine, clock: FakeClock, receiver: WebhookReceiver
    ) -> None:
        # given
        await add_rule(db, [await add_webhook(db, receiver)])
        # when: one event every 0.7 s, committed one by one (each its own batch)
        for _ in range(20):
            await consider(engine, event(camera_id=1))
            clock.advance(0.7)
        # then
        rows = await alerts(db)
        assert len(rows) == 1
        assert rows[0].suppressed_count == 19

    async def test_other_type_or_camera_is_not_suppressed(
        self, db: Sessionmaker, engine: AlertEngine, receiver: WebhookReceiver
    ) -> None:
        await add_rule(db, [await add_webhook(db, receiver)])
        await consider(engine, event(camera_id=1), event(camera_id=2), event(camera_id=1, type_="person"))
        rows = await alerts(db)
        assert {(r.camera_id, r.event_type) for r in rows} == {(1, "anomaly"), (2, "anomaly"), (1, "person")}
        assert all(r.suppressed_count == 0 for r in rows)

    async def test_new_window_after_fifteen_seconds(
        self, db: Sessionmaker, engine: AlertEngine, clock: FakeClock, receiver: WebhookReceiver
    ) -> None:
        await add_rule(db, [await add_webhook(db, receiver)])
        await consider(engine, event(), event())
        clock.advance(15.0)
        await consider(engine, event())
        rows = await alerts(db)
        assert [r.suppressed_count for r in rows] == [1, 0]

    async def test_rule_window_is_used(
        self, db: Sessionmaker, engine: AlertEngine, clock: FakeClock, receiver: WebhookReceiver
    ) -> None:
        await add_rule(db, [await add_webhook(db, receiver)], dedup_window_s=0)
        await consider(engine, event(), event(), event())
        assert len(await alerts(db)) == 3


class TestRules:
    async def test_one_row_per_webhook_and_unmatched_events_ignored(
        self, db: Sessionmaker, engine: AlertEngine, receiver: WebhookReceiver
    ) -> None:
        a = await add_webhook(db, receiver, "a")
        b = await add_webhook(db, receiver, "b")
        off = await add_webhook(db, receiver, "off", enabled=False)
        await add_rule(db, [a, b, off], camera_ids=[1], event_types=["anomaly"], min_severity="high")
        await consider(
            engine,
            event(camera_id=1, severity="high"),
            event(camera_id=2, severity="critical"),
            event(camera_id=1, severity="medium"),
            event(camera_id=1, type_="person", severity="critical"),
        )
        rows = await alerts(db)
        assert sorted(r.webhook_id for r in rows) == [a, b]  # the disabled webhook gets nothing
        assert {r.event_id for r in rows} == {rows[0].event_id}

    async def test_payload_masks_the_camera_password(
        self, db: Sessionmaker, engine: AlertEngine, receiver: WebhookReceiver
    ) -> None:
        async with db.begin() as s:
            s.add(Camera(id=5, name="gate", url="rtsp://admin:hunter2@10.0.0.5/s", enabled=False))
        await add_rule(db, [await add_webhook(db, receiver)])
        e = event(camera_id=5, score=0.93)
        await consider(engine, e)
        payload = (await alerts(db))[0].payload
        assert payload["camera"] == {"id": 5, "name": "gate", "url": "rtsp://admin:****@10.0.0.5/s"}
        assert "hunter2" not in str(payload)
        assert payload["event"]["id"] == e.id and payload["event"]["score"] == 0.93
        assert payload["event"]["snapshot_url"] == f"/api/events/{e.id}/snapshot.jpg"
        assert payload["rule"]["name"] == "rule"

    async def test_priority_high_now_low_at_the_digest_boundary(
        self, db: Sessionmaker, engine: AlertEngine, receiver: WebhookReceiver
    ) -> None:
        await add_rule(db, [await add_webhook(db, receiver)])
        await consider(engine, event(camera_id=1, severity="critical"), event(camera_id=2, severity="low"))
        high, low = sorted(await alerts(db), key=lambda r: r.camera_id or 0)
        assert high.priority == AlertPriority.immediate and high.next_attempt_at <= high.created_at
        assert low.priority == AlertPriority.digest
        assert low.next_attempt_at > low.created_at and low.next_attempt_at.timestamp() % 60 == 0
        assert {high.status, low.status} == {AlertStatus.pending}


class TestUpdates:
    async def test_severity_raised_by_an_update_alerts_once(
        self, db: Sessionmaker, engine: AlertEngine, clock: FakeClock, receiver: WebhookReceiver
    ) -> None:
        await add_rule(db, [await add_webhook(db, receiver)], min_severity="high", dedup_window_s=0)
        opened = event(severity="medium")
        await consider(engine, opened)
        assert await alerts(db) == []
        raised = opened.evolve(phase=Phase.update, severity=Severity.high, description="a person climbing")
        await consider(
            engine, raised, raised.evolve(severity=Severity.critical), raised.evolve(phase=Phase.close)
        )
        rows = await alerts(db)
        assert len(rows) == 1
        assert rows[0].event_id == opened.id and rows[0].severity == "high"
        assert rows[0].payload["event"]["description"] == "a person climbing"

    async def test_update_of_an_alerted_event_does_not_realert_after_a_restart(
        self, db: Sessionmaker, clock: FakeClock, receiver: WebhookReceiver
    ) -> None:
        await add_rule(db, [await add_webhook(db, receiver)], dedup_window_s=0)
        e = event(severity="high")
        async with AlertEngine(db, clock=clock) as first:
            await consider(first, e)
        async with AlertEngine(db, clock=clock) as second:  # empty memory: the outbox remembers
            await consider(second, e.evolve(phase=Phase.update, severity=Severity.critical))
        assert len(await alerts(db)) == 1
