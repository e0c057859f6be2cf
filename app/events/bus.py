"""EventBus: publish() hands each event to every subscriber; it knows no subscriber by name or type.

Direct subscribers are called inline (they must be non-blocking, like the logger's log()); the others
get a bounded queue drained by their own task, so a slow subscriber never delays the publisher.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from app.events.types import NewEvent
from app.kit.tasks import cancel_and_wait, spawn

log = logging.getLogger("argus.bus")
Handler = Callable[[NewEvent], Awaitable[None] | None]


@dataclass
class _Subscriber:
    name: str
    handler: Handler
    queue: asyncio.Queue[NewEvent] | None
    task: asyncio.Task[Any] | None = None
    dropped: int = 0
    failed: int = 0
    delivered: int = 0
    _idle: asyncio.Event = field(default_factory=asyncio.Event)


class EventBus:
    def __init__(self, queue_size: int = 10_000) -> None:
        self._queue_size = queue_size
        self._subs: dict[str, _Subscriber] = {}

    def subscribe(self, name: str, handler: Handler, *, direct: bool = False) -> None:
        queue: asyncio.Queue[NewEvent] | None = None if direct else asyncio.Queue(self._queue_size)
        sub = _Subscriber(name, handler, queue)
        sub._idle.set()
        if queue is not None:
            sub.task = spawn(self._drain(sub), name=f"argus.bus:{name}")
        self._subs[name] = sub

    def publish(self, event: NewEvent, *, skip: Collection[str] = ()) -> NewEvent:
        """Non-blocking; stamps produced_at so latency can be measured end to end. `skip` names
        subscribers that must not get it (the logger, for an event its publisher already stored)."""
        if not event.produced_at:
            event = event.evolve(produced_at=time.time())
        for sub in self._subs.values():
            if sub.name in skip:
                continue
            if sub.queue is None:
                self._call_direct(sub, event)
                continue
            try:
                sub.queue.put_nowait(event)
                sub._idle.clear()
            except asyncio.QueueFull:
                sub.dropped += 1
                log.error("bus subscriber %s is full; event %s not delivered to it", sub.name, event.id)
        return event

    def _call_direct(self, sub: _Subscriber, event: NewEvent) -> None:
        try:
            result = sub.handler(event)
            if asyncio.iscoroutine(result):
                spawn(result, name=f"argus.bus:{sub.name}:{event.id}")
            sub.delivered += 1
        except Exception:
            sub.failed += 1
            log.exception("bus subscriber %s failed on event %s", sub.name, event.id)

    async def _drain(self, sub: _Subscriber) -> None:
        assert sub.queue is not None
        while True:
            event = await sub.queue.get()
            try:
                result = sub.handler(event)
                if asyncio.iscoroutine(result):
                    await result
                sub.delivered += 1
            except Exception:
                sub.failed += 1
                log.exception("bus subscriber %s failed on event %s", sub.name, event.id)
            finally:
                sub.queue.task_done()
                if sub.queue.empty():
                    sub._idle.set()

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every queued event has been handled (shutdown, tests)."""
        waits = [s._idle.wait() for s in self._subs.values() if s.queue is not None]
        if waits:
            await asyncio.wait_for(asyncio.gather(*waits), timeout)

    async def close(self) -> None:
        try:
            await self.drain()
        except TimeoutError:
            log.error("bus subscribers did not drain in time")
        for sub in self._subs.values():
            await cancel_and_wait(sub.task)

    def stats(self) -> dict[str, dict[str, int]]:
        return {
            s.name: {
                "queued": s.queue.qsize() if s.queue else 0,
                "delivered": s.delivered,
                "dropped": s.dropped,
                "failed": s.failed,
            }
            for s in self._subs.values()
        }
