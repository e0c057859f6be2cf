"""Cluster-wide alert dedup and the digest lock over the real Redis: two engines (two nodes) on one
outbox raise one alert per window between them; one node per digest period sends the digests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from app.alerts.dispatcher import WebhookDispatcher
from app.alerts.engine import AlertEngine
from app.cluster.dedup import DigestLock, RedisDedup
from app.cluster.keys import Keys, connect
from app.models import AlertStatus
from tests.alerts.conftest import (
    FAST,
    FakeClock,
    Sessionmaker,
    add_rule,
    add_webhook,
    alerts,
    event,
    migrated,
)
from tests.alerts.test_dispatcher import raise_events, wait_status
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import eventually
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.redis


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Sessionmaker]:
    """The outbox both nodes share (SQLite is enough here: the windows are in Redis)."""
    sm = await migrated(f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}")
    yield sm
    await sm.kw["bind"].dispose()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


async def test_the_first_hit_in_a_window_wins_on_whichever_node(redis: Redis, keys: Keys) -> None:
    a, b = RedisDedup(redis, keys=keys), RedisDedup(redis, keys=keys)
    assert await a.admit((1, 5, "anomaly"), 15, ["x1", "x2"]) is None  # first: raise x1, x2
    assert await b.admit((1, 5, "anomaly"), 15, ["y1"]) == ["x1", "x2"]  # swallowed by node a's window
    assert await b.admit((1, 6, "anomaly"), 15, ["y2"]) is None  # another camera
    assert await b.admit((2, 5, "anomaly"), 15, ["y3"]) is None  # another rule
    assert await b.admit((1, 5, "person"), 15, ["y4"]) is None  # another type
    assert await a.admit((1, 5, "anomaly"), 0, ["z"]) is None  # a rule without a window


async def test_a_window_ends_after_its_time_and_a_released_one_at_once(redis: Redis, keys: Keys) -> None:
    a, b = RedisDedup(redis, keys=keys), RedisDedup(redis, keys=keys)
    assert await a.admit((1, 1, "t"), 0.3, ["a1"]) is None

    async def b_opens() -> bool:
        return await b.admit((1, 1, "t"), 0.3, ["b1"]) is None

    await eventually(b_opens, 5)  # a's window expired: b's hit opens the next
    assert await redis.pttl(keys.dedup(1, 1, "t")) > 0  # b's window now
    await b.release({"b1"})  # b's alert was never written
    assert await a.admit((1, 1, "t"), 15, ["a2"]) is None
    await b.release({"b1"})  # not b's window any more: a's stays
    assert await b.admit((1, 1, "t"), 15, ["b2"]) == ["a2"]


async def test_two_engines_raise_one_alert_per_window_between_them(
    db: Sessionmaker, receiver: WebhookReceiver, redis: Redis, keys: Keys
) -> None:
    await add_rule(db, [await add_webhook(db, receiver)])
    clock = FakeClock()
    async with AlertEngine(db, clock=clock) as one, AlertEngine(db, clock=clock) as two:
        one.dedup = RedisDedup(redis, keys=keys)
        two.dedup = RedisDedup(redis, keys=keys)
        for i in range(6):  # the camera's events alternate between the nodes (a hand-over)
            await raise_events(one if i % 2 else two, event(camera_id=4))
    rows = await alerts(db)
    assert len(rows) == 1 and rows[0].suppressed_count == 5


async def test_one_node_per_digest_period(redis: Redis, keys: Keys) -> None:
    clock = FakeClock(now=1_000_000.0)
    locks = [DigestLock(redis, f"n{i}", 60, keys=keys, clock=clock) for i in range(3)]
    for _ in range(3):
        winners = [lock.node for lock in locks if await lock.may_send()]
        assert len(winners) == 1
        assert [lock.node for lock in locks if await lock.may_send()] == winners  # stable in the period
        clock.advance(60)


async def test_a_gated_dispatcher_leaves_the_digest_to_the_lock_holder(
    db: Sessionmaker, receiver: WebhookReceiver
) -> None:
    await add_rule(db, [await add_webhook(db, receiver)], dedup_window_s=0)
    holder = asyncio.Event()

    async def gate() -> bool:
        return holder.is_set()

    async with (
        WebhookDispatcher(db, FAST) as dispatcher,
        AlertEngine(db, digest_interval_s=0.2, on_alert=dispatcher.wake) as engine,
    ):
        dispatcher.digest_gate = gate
        await raise_events(engine, event(camera_id=1, severity="low"), event(camera_id=2, severity="high"))
        await wait_status(db, AlertStatus.delivered, 1)  # the immediate one goes out regardless
        await asyncio.sleep(0.5)  # two digest boundaries passed: still another node's to send
        assert len(receiver.received) == 1
        holder.set()
        await wait_status(db, AlertStatus.delivered, 2)
    assert [r.json["type"] for r in receiver.received] == ["alert", "digest"]


async def test_a_hung_redis_never_stops_alerts(
    db: Sessionmaker, receiver: WebhookReceiver, keys: Keys
) -> None:
    """Redis stops answering without closing its connections (a blackhole proxy): the dedup windows and
    the digest gate give up after their timeout, the node decides locally and the webhook still goes out."""
    await add_rule(db, [await add_webhook(db, receiver)])
    proxy = await TcpProxy.start(6379)
    hung = connect(f"redis://127.0.0.1:{proxy.port}/0")
    try:
        dedup = RedisDedup(hung, keys=keys, timeout_s=1.0)
        lock = DigestLock(hung, "n1", 0.5, keys=keys, timeout_s=1.0)
        async with (
            WebhookDispatcher(db, FAST) as dispatcher,
            AlertEngine(db, digest_interval_s=3600, on_alert=dispatcher.wake) as engine,
        ):
            engine.dedup = dedup
            dispatcher.digest_gate = lock.may_send
            await raise_events(engine, event(camera_id=1, severity="high"))
            await wait_status(db, AlertStatus.delivered, 1)
            assert dedup.fallbacks == 0  # Redis decided while it answered

            await proxy.pause()  # connections stay open, nothing comes back
            await raise_events(engine, event(camera_id=2, severity="high"))
            await wait_status(db, AlertStatus.delivered, 2, timeout=20)
            assert dedup.fallbacks >= 1  # the local window decided
            await raise_events(engine, event(camera_id=2, severity="high"))  # the local window swallows it
        rows = await alerts(db)
        assert len(rows) == 2 and sum(r.suppressed_count for r in rows) == 1
        assert len(receiver.received) == 2
    finally:
        await proxy.aclose()
        await hung.aclose()
