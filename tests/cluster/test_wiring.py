"""enter_redis_parts attaches the Redis half to a node's parts: its bus events go out on the events
channel with its name, the engine's dedup and the dispatcher's digest gate are the cluster's."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from redis.asyncio import Redis

from app.alerts import AlertEngine, WebhookDispatcher
from app.cluster.dedup import RedisDedup
from app.cluster.keys import Keys
from app.cluster.wiring import enter_redis_parts
from app.events.bus import EventBus
from app.events.stream import EventStreamHub
from app.events.types import NewEvent, Severity, utcnow
from app.live.hub import LiveHub
from tests.alerts.conftest import migrated
from tests.conftest import make_settings

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
