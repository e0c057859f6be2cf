"""EventBus: direct and queued subscribers, bounded queues, failures contained, drain on close."""

from __future__ import annotations

import asyncio

from app.events.bus import EventBus
from app.events.types import NewEvent, utcnow
from app.kit.severity import Severity


def ev(n: int = 0) -> NewEvent:
    return NewEvent(camera_id=1, type="anomaly", severity=Severity.low, started_at=utcnow(), data={"n": n})


class TestEventBus:
    async def test_direct_subscriber_is_called_inline(self) -> None:
        bus = EventBus()
        seen: list[NewEvent] = []
        bus.subscribe("direct", seen.append, direct=True)
        published = bus.publish(ev())
        assert seen == [published]  # before any await
        assert published.produced_at > 0
        await bus.close()

    async def test_queued_subscriber_gets_every_event_in_order(self) -> None:
        bus = EventBus()
        seen: list[int] = []

        async def slow(e: NewEvent) -> None:
            await asyncio.sleep(0)
            seen.append(e.data["n"])

        bus.subscribe("slow", slow)
        for n in range(20):
            bus.publish(ev(n))
        assert seen == []  # publish never waits for a queued subscriber
        await bus.drain(timeout=5)
        assert seen == list(range(20))
        assert bus.stats()["slow"]["delivered"] == 20
        await bus.close()

    async def test_full_queue_drops_and_counts_for_that_subscriber_only(self) -> None:
        bus = EventBus(queue_size=3)
        gate = asyncio.Event()
        stuck_seen: list[NewEvent] = []
        direct_seen: list[NewEvent] = []

        async def stuck(e: NewEvent) -> None:
            await gate.wait()
            stuck_seen.append(e)

        bus.subscribe("stuck", stuck)
        bus.subscribe("direct", direct_seen.append, direct=True)
        for n in range(10):
            bus.publish(ev(n))
        assert len(direct_seen) == 10
        assert bus.stats()["stuck"]["dropped"] == 7
        gate.set()
        await bus.drain(timeout=5)
        assert len(stuck_seen) == 3
        await bus.close()

    async def test_a_failing_subscriber_does_not_stop_the_others(self) -> None:
        bus = EventBus()
        seen: list[NewEvent] = []

        def broken(_: NewEvent) -> None:
            raise RuntimeError("boom")

        async def broken_async(_: NewEvent) -> None:
            raise RuntimeError("boom")

        bus.subscribe("broken", broken, direct=True)
        bus.subscribe("broken_async", broken_async)
        bus.subscribe("ok", seen.append, direct=True)
        bus.publish(ev())
        bus.publish(ev())
        await bus.drain(timeout=5)
        assert len(seen) == 2
        stats = bus.stats()
        assert stats["broken"]["failed"] == 2 and stats["broken_async"]["failed"] == 2
        await bus.close()
