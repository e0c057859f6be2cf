"""EventFanout over the real Redis: node A's events and camera states reach node B's live hub and event
stream, never B's bus (logger, alerts); a node ignores its own messages."""

from __future__ import annotations

import asyncio
import json

import pytest
from redis.asyncio import Redis

from app.cluster.fanout import EventFanout
from app.cluster.keys import Keys
from app.events.bus import EventBus
from app.events.stream import EventStreamHub
from app.events.types import NewEvent, utcnow
from app.kit.severity import Severity
from app.live.hub import LiveHub

pytestmark = pytest.mark.redis


async def next_text(client: object, timeout: float = 5.0) -> dict[str, object]:
    async with asyncio.timeout(timeout):
        while True:
            message = await client.next_message(timeout)  # type: ignore[attr-defined]
            if isinstance(message, str):
                return json.loads(message)


async def test_events_and_states_reach_the_other_nodes_viewers_only(redis: Redis, keys: Keys) -> None:
    bus_a, bus_b = EventBus(), EventBus()
    stored_b: list[NewEvent] = []
    bus_b.subscribe("event_logger", stored_b.append, direct=True)  # B's logger: must never see A's events
    stream_a, stream_b = EventStreamHub(), EventStreamHub()
    async with LiveHub() as hub_a, LiveHub() as hub_b:
        fan_a = EventFanout(redis, "a", deliver=[hub_a.publish_event, stream_a.publish],
                            receive_state=hub_a.receive_state, keys=keys)  # fmt: skip
        fan_b = EventFanout(redis, "b", deliver=[hub_b.publish_event, stream_b.publish],
                            receive_state=hub_b.receive_state, keys=keys)  # fmt: skip
        async with fan_a, fan_b:
            await fan_a.ready()
            await fan_b.ready()
            bus_a.subscribe("cluster", fan_a.publish)
            bus_a.subscribe("event_stream", stream_a.publish, direct=True)
            hub_a.on_state = fan_a.state_changed
            viewer = hub_b.connect()
            hub_b.subscribe(viewer, [3])
            with stream_a.client() as on_a, stream_b.client() as on_b:
                event = bus_a.publish(
                    NewEvent(camera_id=3, type="anomaly", severity=Severity.high, started_at=utcnow())
                )
                hub_a.publish_state(3, "streaming", {"fps": 5})

                got = await asyncio.wait_for(on_b.queue.get(), 5)
                assert got.id == event.id and got.produced_at == event.produced_at  # same SSE position
                texts = [await next_text(viewer), await next_text(viewer)]
                kinds = {t["type"]: t for t in texts}
                assert kinds["event"]["event"]["id"] == event.id  # type: ignore[index]
                assert kinds["camera_state"]["state"] == "streaming"
                assert hub_b.knows(3)

                await bus_a.drain()
                await asyncio.sleep(0.3)  # A's own message came back through Redis by now
                assert on_a.queue.qsize() == 1  # from A's bus only, not again from Redis
                assert stored_b == [] and bus_b.stats()["event_logger"]["delivered"] == 0
                assert fan_b.received == 2 and fan_a.received == 0
        await bus_a.close()
        await bus_b.close()
