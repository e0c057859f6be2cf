"""enter_redis_parts attaches the Redis half to a node's parts: its bus events go out on the events
channel with its name, the engine's dedup and the dispatcher's digest gate are the cluster's."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from app.alerts import AlertEngine, WebhookDispatcher
from app.cluster.dedup import RedisDedup
from app.cluster.fanout import encode_event
from app.cluster.keys import Keys
from app.cluster.relay import LiveRelay
from app.cluster.wiring import enter_redis_parts
from app.events.bus import EventBus
from app.events.stream import EventStreamHub
from app.events.types import NewEvent, Severity, utcnow
from app.live.hub import LiveHub
from app.main import create_app
from tests.alerts.conftest import migrated
from tests.conftest import AUTH, make_settings
from tests.support.waiting import eventually

pytestmark = pytest.mark.redis


async def test_a_nodes_parts_are_wired_to_redis(
    tmp_path: Path, redis: Redis, redis_url: str, keys: Keys
) -> None:
    settings = make_settings(tmp_path, node_name="n1").model_copy(update={"redis_url": redis_url})
    db = await migrated(f"sqlite+aiosqlite:///{tmp_path / 'argus.db'}")
    bus, stream = EventBus(), EventStreamHub()
    async with AsyncExitStack() as stack:
        hub = await stack.enter_async_context(LiveHub())
        dispatcher = await stack.enter_async_context(WebhookDispatcher(db))
        engine = await stack.enter_async_context(AlertEngine(db))
        parts = await enter_redis_parts(
            stack, settings, bus=bus, hub=hub, event_stream=stream, alert_engine=engine,
            dispatcher=dispatcher, runs_camera=lambda _: False, keys=keys,
        )  # fmt: skip
        await parts.fanout.ready()
        assert isinstance(engine.dedup, RedisDedup) and dispatcher.digest_gate is not None
        assert hub.remote is parts.relay and parts.vlm_jobs is None
        async with redis.pubsub() as pubsub:
            await pubsub.subscribe(keys.events)
            event = bus.publish(
                NewEvent(camera_id=1, type="anomaly", severity=Severity.high, started_at=utcnow())
            )
            async with asyncio.timeout(5):
                while (
                    message := await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                ) is None:
                    pass
        body = json.loads(message["data"])
        assert body["origin"] == "n1" and body["event"]["id"] == event.id
        await bus.close()
    assert hub.remote is None  # the relay let go of the hub when it stopped
    await db.kw["bind"].dispose()


@pytest.mark.postgres
async def test_two_nodes_in_cluster_mode_share_their_events(
    tmp_path: Path, clean_postgres_url: str, redis: Redis, redis_url: str, keys: Keys
) -> None:
    """Two apps (nodes) on one PostgreSQL and Redis: an event ingested on one reaches the other's event
    stream, and the other's live hub relays through Redis."""

    def node(name: str) -> FastAPI:
        cluster = {"redis_url": redis_url, "redis_prefix": keys.prefix, "node_name": name}
        return create_app(make_settings(tmp_path / name, database_url=clean_postgres_url, **cluster))

    one, two = node("n1"), node("n2")
    async with one.router.lifespan_context(one), two.router.lifespan_context(two):
        assert isinstance(two.state.runtime.hub.remote, LiveRelay)

        async def both_listen() -> bool:
            return dict(await redis.pubsub_numsub(keys.events))[keys.events.encode()] >= 2

        await eventually(both_listen, 10, what="both nodes subscribed")
        with two.state.runtime.event_stream.client() as on_two:
            transport = httpx.ASGITransport(app=one)
            async with httpx.AsyncClient(transport=transport, base_url="http://n1", headers=AUTH) as client:
                response = await client.post("/api/events", json={"type": "door", "severity": "high"})
            assert response.status_code == 202, response.text
            got = await asyncio.wait_for(on_two.queue.get(), 10)
        assert got.id == response.json()["id"] and got.type == "door"


async def test_a_workers_description_goes_on_the_bus_of_the_cameras_node_only(
    tmp_path: Path, redis: Redis, redis_url: str, keys: Keys
) -> None:
    """For its alerts and MQTT, as an in-process describer's update would; never to its logger again."""
    settings = make_settings(tmp_path, node_name="n1").model_copy(update={"redis_url": redis_url})
    db = await migrated(f"sqlite+aiosqlite:///{tmp_path / 'argus.db'}")
    bus = EventBus()
    published: list[NewEvent] = []
    stored: list[NewEvent] = []
    bus.subscribe("mqtt", published.append, direct=True)
    bus.subscribe("event_logger", stored.append, direct=True)
    async with AsyncExitStack() as stack:
        hub = await stack.enter_async_context(LiveHub())
        dispatcher = await stack.enter_async_context(WebhookDispatcher(db))
        engine = await stack.enter_async_context(AlertEngine(db))
        parts = await enter_redis_parts(
            stack, settings, bus=bus, hub=hub, event_stream=EventStreamHub(), alert_engine=engine,
            dispatcher=dispatcher, runs_camera=lambda camera_id: camera_id == 1, keys=keys,
        )  # fmt: skip
        await parts.fanout.ready()
        mine, other = (
            NewEvent(camera_id=c, type="object", severity=Severity.high, started_at=utcnow(), description="x")
            for c in (1, 2)
        )
        for event in (other, mine):
            await redis.publish(keys.events, encode_event("worker:w1", event))
        await eventually(lambda: parts.fanout.received == 2, 5)
        assert [e.id for e in published] == [mine.id] and stored == []
        await bus.close()
    await db.kw["bind"].dispose()
