"""An alert never points at an event that is not stored: the engine writes the event row with the alert
when the logger has not (a camera event still in the logger's buffer at a hard crash), never over it."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from app.alerts.engine import AlertEngine
from app.events.repository import EventRepository
from app.models import Event
from tests.alerts.conftest import FakeClock, Sessionmaker, add_rule, add_webhook, alerts, event
from tests.support.webhook_receiver import WebhookReceiver


async def stored(sm: Sessionmaker) -> dict[str, Event]:
    async with sm() as s:
        return {e.id: e for e in (await s.execute(select(Event))).scalars()}


class TestAlertedEventsAreStored:
    async def test_an_event_the_logger_never_wrote_is_stored_with_its_alert(
        self, db: Sessionmaker, receiver: WebhookReceiver
    ) -> None:
        # given a rule, and a camera event no logger ever writes (it was in the buffer at a crash)
        await add_rule(db, [await add_webhook(db, receiver)])
        e = event(camera_id=3, score=4.5, data={"peak": 5.0})
        # when the engine alerts on it
        async with AlertEngine(db, clock=FakeClock()) as engine:
            await engine.consider(e)
            await engine.idle()
        # then the alert and the event it points at are both stored
        assert [a.event_id for a in await alerts(db)] == [e.id]
        row = (await stored(db))[e.id]
        assert (row.camera_id, row.type, row.score, row.data) == (3, "anomaly", 4.5, {"peak": 5.0})

    async def test_a_stored_event_is_left_as_the_logger_wrote_it(
        self, db: Sessionmaker, receiver: WebhookReceiver
    ) -> None:
        await add_rule(db, [await add_webhook(db, receiver)])
        e = event(camera_id=3, score=1.0)
        newer = e.evolve(score=9.0, description="a person at the door")
        async with db.begin() as s:  # the logger wrote a later version first
            await EventRepository(s).upsert_many([newer.to_row()])
        async with AlertEngine(db, clock=FakeClock()) as engine:
            await engine.consider(e)
            await engine.idle()
        row = (await stored(db))[e.id]
        assert (row.score, row.description) == (9.0, "a person at the door")

    async def test_decide_returns_once_the_alert_is_committed(
        self, db: Sessionmaker, receiver: WebhookReceiver
    ) -> None:
        await add_rule(db, [await add_webhook(db, receiver)])
        events = [event(camera_id=i) for i in range(5)]
        async with AlertEngine(db, clock=FakeClock()) as engine:
            await asyncio.wait_for(engine.decide(events), 10)
            assert sorted(a.event_id for a in await alerts(db)) == sorted(e.id for e in events)
