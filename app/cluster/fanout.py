"""EventFanout: events and camera states appear on every node's /ws/live and event stream.

What this node's bus carries (events) and what its live hub announces (camera states) is PUBLISHed on
the `events` channel as JSON with the origin node. Every other node hands an event to its local live
and stream hubs only (the `deliver` callables), never to its bus: the origin already stored it and
raised its alerts, so no logger, alert engine or MQTT bridge sees it twice. A node skips its own
messages. A VLM worker's description (origin `worker:<name>`) is also handed to `worker_update`: the
node that runs the event's camera puts it on its bus for the alert engine and MQTT, as a describer in
the node's own process would have. Pub/sub is fire-and-forget: a node that is briefly cut off from
Redis misses live messages, as a browser that reconnects does; the event stream's clients resume from
the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any, Self

from redis.asyncio import Redis

from app.cluster.channel import listen_forever
from app.cluster.keys import Keys
from app.events.types import NewEvent
from app.kit.tasks import cancel_and_wait, spawn

log = logging.getLogger("argus.cluster.fanout")
STATE_BACKLOG = 1000  # camera states waiting for Redis before the oldest are dropped


def encode_event(origin: str, event: NewEvent) -> bytes:
    body = {"origin": origin, "kind": "event", "event": event.to_json(), "produced_at": event.produced_at}
    return json.dumps(body, separators=(",", ":"), default=str).encode()


def encode_state(origin: str, camera_id: int, text: str) -> bytes:
    body = {"origin": origin, "kind": "state", "camera_id": camera_id, "text": text}
    return json.dumps(body, separators=(",", ":")).encode()


class EventFanout:
    def __init__(
        self,
        redis: Redis,
        node: str,
        *,
        deliver: Sequence[Callable[[NewEvent], Any]] = (),
        receive_state: Callable[[int, str], None] | None = None,
        worker_update: Callable[[NewEvent], None] | None = None,
        keys: Keys | None = None,
    ) -> None:
        self._redis = redis
        self.node = node
        self._deliver = list(deliver)
        self._receive_state = receive_state
        self._worker_update = worker_update
        self.keys = keys or Keys()
        self._states: asyncio.Queue[bytes] = asyncio.Queue(STATE_BACKLOG)
        self._tasks: list[asyncio.Task[Any]] = []
        self._ready = asyncio.Event()
        self.sent = 0
        self.received = 0
        self.failed = 0
        self.last_error: str | None = None

    async def __aenter__(self) -> Self:
        self._tasks = [
            spawn(self._listen(), name="argus.cluster.fanout.listen"),
            spawn(self._send_states(), name="argus.cluster.fanout.states"),
        ]
        log.info("cluster fan-out started (node %s)", self.node)
        return self

    async def __aexit__(self, *_: object) -> None:
        for task in self._tasks:
            await cancel_and_wait(task)
        log.info("cluster fan-out stopped: %s", self.stats())

    async def ready(self, timeout: float = 5.0) -> None:
        """Subscribed to the channel (tests: a message published before this is not received)."""
        await asyncio.wait_for(self._ready.wait(), timeout)

    # -- this node's side --

    async def publish(self, event: NewEvent) -> None:
        """Bus subscriber (queued): Redis is a network hop, never in the publisher's path."""
        await self._send(encode_event(self.node, event))

    def state_changed(self, camera_id: int, text: str) -> None:
        """The live hub's `on_state`: never blocks; states wait on a bounded queue."""
        if self._states.full():
            self._states.get_nowait()
        self._states.put_nowait(encode_state(self.node, camera_id, text))

    async def _send_states(self) -> None:
        while True:
            await self._send(await self._states.get())

    async def _send(self, payload: bytes) -> None:
        try:
            await self._redis.publish(self.keys.events, payload)
            self.sent += 1
        except Exception as exc:  # Redis away: other nodes miss it live; this node is unaffected
            self.failed += 1
            if self.last_error is None:
                log.warning("cluster fan-out: publish failed: %s: %s", type(exc).__name__, exc)
            self.last_error = f"{type(exc).__name__}: {exc}"
            return
        self.last_error = None

    # -- other nodes' side --

    async def _listen(self) -> None:
        await listen_forever(
            self._redis, self.keys.events, self.receive, self._ready, "cluster fan-out", self._listen_failed
        )

    def _listen_failed(self, exc: BaseException) -> None:
        self.last_error = f"listen: {type(exc).__name__}: {exc}"

    def receive(self, payload: bytes | str) -> None:
        try:
            body = json.loads(payload)
            if body.get("origin") == self.node:
                return
            if body.get("kind") == "event":
                event = NewEvent.from_json(body["event"]).evolve(produced_at=body.get("produced_at") or 0.0)
                self.received += 1
                for deliver in self._deliver:
                    try:
                        deliver(event)
                    except Exception:  # one hub's bug never starves the other
                        log.exception("cluster fan-out: delivering event %s failed", event.id)
                if self._worker_update is not None and str(body.get("origin", "")).startswith("worker:"):
                    self._worker_update(event)
            elif body.get("kind") == "state" and self._receive_state is not None:
                self.received += 1
                self._receive_state(int(body["camera_id"]), str(body["text"]))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("cluster fan-out: bad message ignored: %s", exc)

    def stats(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "received": self.received,
            "failed": self.failed,
            "last_error": self.last_error,
        }
