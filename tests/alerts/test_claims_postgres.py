"""Claims on PostgreSQL: `FOR UPDATE SKIP LOCKED` + leases, so two dispatchers never send one row at once."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import text

from app.alerts.dispatcher import WebhookDispatcher
from app.alerts.engine import AlertEngine
from app.alerts.outbox import OutboxRepository
from app.models import AlertPriority, AlertStatus, utcnow
from tests.alerts.conftest import FAST, Sessionmaker, add_rule, add_webhook, alerts, event, migrated
from tests.support.waiting import eventually
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[Sessionmaker]:
    sm = await migrated(postgres_url)
    async with sm.begin() as s:  # the database lives for the session: start each test empty
        for table in ("alerts", "alert_rules", "webhooks"):
            await s.execute(text(f"DELETE FROM {table}"))
    yield sm
    await sm.kw["bind"].dispose()


async def raise_alerts(sm: Sessionmaker, receiver: WebhookReceiver, n: int) -> None:
    await add_rule(sm, [await add_webhook(sm, receiver)], dedup_window_s=0)
    async with AlertEngine(sm) as engine:
        for i in range(n):
            await engine.consider(event(camera_id=i % 8))
        await engine.idle()


async def test_concurrent_claims_skip_locked_rows(pg: Sessionmaker, receiver: WebhookReceiver) -> None:
    # given 120 due rows
    await raise_alerts(pg, receiver, 120)
    now = utcnow()
    lease = now + timedelta(seconds=60)
    # when: B claims while A's claim transaction still holds its row locks
    async with pg.begin() as a:
        rows_a = await OutboxRepository(a).claim("A", now, lease, priority=AlertPriority.immediate, limit=80)
        async with pg.begin() as b:
            rows_b = await OutboxRepository(b).claim(
                "B", now, lease, priority=AlertPriority.immediate, limit=80
            )
    # then: B took only what A had not locked, and nobody can claim a leased row again
    ids_a, ids_b = {r.id for r in rows_a}, {r.id for r in rows_b}
    assert len(ids_a) == 80 and len(ids_b) == 40 and not ids_a & ids_b
    async with pg.begin() as c:
        again = await OutboxRepository(c).claim("C", now, lease, priority=AlertPriority.immediate, limit=200)
    assert again == []


async def test_expired_lease_is_claimed_again(pg: Sessionmaker, receiver: WebhookReceiver) -> None:
    await raise_alerts(pg, receiver, 3)
    now = utcnow()
    async with pg.begin() as s:
        taken = await OutboxRepository(s).claim(
            "dead-process", now, now + timedelta(seconds=1), priority=AlertPriority.immediate, limit=10
        )
    later = now + timedelta(seconds=2)  # the lease ran out: its owner died mid-delivery
    async with pg.begin() as s:
        retaken = await OutboxRepository(s).claim(
            "B", later, later + timedelta(seconds=60), priority=AlertPriority.immediate, limit=10
        )
    assert {r.id for r in retaken} == {r.id for r in taken} and {r.claimed_by for r in retaken} == {"B"}


async def test_two_dispatchers_deliver_each_alert_exactly_once(
    pg: Sessionmaker, postgres_url: str, receiver: WebhookReceiver
) -> None:
    await raise_alerts(pg, receiver, 150)
    receiver.delay_s = 0.005
    other = await migrated(postgres_url)  # a second process: its own engine and connection pool
    try:
        async with WebhookDispatcher(pg, FAST) as one, WebhookDispatcher(other, FAST) as two:

            async def all_delivered() -> bool:
                return sum(r.status == AlertStatus.delivered for r in await alerts(pg)) >= 150

            await eventually(all_delivered, 30, what="every alert delivered")
    finally:
        await other.kw["bind"].dispose()
    keys = Counter(r.key for r in receiver.received)
    assert len(keys) == 150 and set(keys.values()) == {1}  # no row was sent twice
    owners = {r.claimed_by for r in await alerts(pg)}
    assert owners == {None}  # every lease released
    assert one.sent > 0 and two.sent > 0  # both dispatchers took a share
    assert receiver.all_signed()
