"""LiveRelay: a viewer on any node watches any camera, encoded once by the node that runs it.

Demand: a node whose local viewers watch a camera it does not run keeps `demand:<camera>:<node>` set
with a short TTL (refreshed every `refresh_s`, deleted when its last viewer leaves; a dead node's key
simply expires). Supply: every `refresh_s` each node scans the demand keys once; for the demanded
cameras it runs, the hub encodes once per tick as for a local viewer and each JPEG message is
PUBLISHed on `live:<camera>` (latest wins while a publish is in flight). Relay: the demanding node
SUBSCRIBEs to that channel and hands each message to its hub, which serves local viewers with the
same one-slot-per-client rule as local frames. A node without viewers for a camera neither
subscribes nor receives anything for it, and nothing is published for a camera nobody demands.

Ownership moves (failover, rebalance) are picked up on the next refresh: `is_local` is asked again
for every watched camera, so a viewer switches from relayed frames to local ones and back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Self

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from app.cluster.keys import Keys
from app.kit.tasks import cancel_and_wait, spawn
from app.live.hub import LiveHub

log = logging.getLogger("argus.cluster.relay")


class LiveRelay:
    def __init__(
        self,
        redis: Redis,
        hub: LiveHub,
        node: str,
        is_local: Callable[[int], bool],
        *,
        keys: Keys | None = None,
        demand_ttl_s: float = 3.0,
        refresh_s: float = 1.0,
    ) -> None:
        self._redis = redis
        self.hub = hub
        self.node = node
        self._is_local = is_local
        self.keys = keys or Keys()
        self._ttl_ms = round(demand_ttl_s * 1000)
        self._refresh_s = refresh_s
        self._local: dict[int, float] = {}  # camera -> fps this node's viewers want
        self._pulling: set[int] = set()  # cameras run elsewhere whose channel this node subscribes to
        self._pushing: dict[int, float] = {}  # cameras run here that other nodes demand -> fps
        self._outgoing: dict[int, bytes] = {}  # newest encoded message per camera, not yet published
        self._kick = asyncio.Event()
        self._out = asyncio.Event()
        self._pubsub: PubSub | None = None
        self._subscribed = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self.published = 0
        self.published_bytes = 0
        self.received = 0
        self.last_error: str | None = None

    async def __aenter__(self) -> Self:
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self.hub.remote = self
        self._tasks = [
            spawn(self._refresh_loop(), name="argus.cluster.relay.refresh"),
            spawn(self._publish_loop(), name="argus.cluster.relay.publish"),
            spawn(self._listen_loop(), name="argus.cluster.relay.listen"),
        ]
        log.info("live relay started (node %s)", self.node)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.hub.remote is self:
            self.hub.remote = None
        for task in self._tasks:
            await cancel_and_wait(task)
        with contextlib.suppress(Exception):  # best effort: the keys expire anyway
            if self._pulling:
                await self._redis.delete(*[self.keys.demand(c, self.node) for c in self._pulling])
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        for camera_id in list(self._pushing):
            self.hub.set_remote_demand(camera_id, 0)
        log.info("live relay stopped: %s", self.stats())

    # -- the hub calls these (RemoteLive) --

    def watched(self, camera_id: int, fps: float) -> None:
        if fps > 0:
            self._local[camera_id] = fps
        else:
            self._local.pop(camera_id, None)
        self._kick.set()  # demand set (or dropped) now, not at the next refresh

    def encoded(self, camera_id: int, message: bytes) -> None:
        if camera_id in self._pushing:
            self._outgoing[camera_id] = message
            self._out.set()

    # -- loops --

    async def _refresh_loop(self) -> None:
        while True:
            self._kick.clear()
            try:
                await self.refresh()
                self.last_error = None
            except Exception as exc:  # Redis unreachable: local viewers of local cameras are unaffected
                if self.last_error is None:
                    log.warning("live relay: refresh failed: %s: %s", type(exc).__name__, exc)
                self.last_error = f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self._refresh_s)

    async def refresh(self) -> None:
        """Renew this node's demand keys and channel subscriptions; read every node's demand once."""
        assert self._pubsub is not None
        wanted = {c: fps for c, fps in self._local.items() if not self._is_local(c)}
        pipe = self._redis.pipeline(transaction=False)
        for camera_id, fps in wanted.items():
            pipe.set(self.keys.demand(camera_id, self.node), f"{fps:g}", px=self._ttl_ms)
        dropped = self._pulling - wanted.keys()
        for camera_id in dropped:
            pipe.delete(self.keys.demand(camera_id, self.node))
        await pipe.execute()
        added = wanted.keys() - self._pulling
        if added:
            await self._pubsub.subscribe(*[self.keys.live(c) for c in added])
        if dropped:
            await self._pubsub.unsubscribe(*[self.keys.live(c) for c in dropped])
        self._pulling = set(wanted)
        if self._pulling:
            self._subscribed.set()
        await self._read_demand()

    async def _read_demand(self) -> None:
        found: list[tuple[int, bytes]] = []
        async for raw in self._redis.scan_iter(match=self.keys.demand_pattern, count=1000):
            key = raw.decode() if isinstance(raw, bytes) else raw
            parsed = self.keys.parse_demand(key)
            if parsed is not None and parsed[1] != self.node and self._is_local(parsed[0]):
                found.append((parsed[0], raw))
        demanded: dict[int, float] = {}
        if found:
            values = await self._redis.mget([raw for _, raw in found])
            for (camera_id, _), value in zip(found, values, strict=True):
                if value is not None:  # expired between SCAN and MGET
                    demanded[camera_id] = max(demanded.get(camera_id, 0.0), _fps(value))
        for camera_id in self._pushing.keys() - demanded.keys():
            self.hub.set_remote_demand(camera_id, 0)
            self._outgoing.pop(camera_id, None)
        for camera_id, fps in demanded.items():
            if self._pushing.get(camera_id) != fps:
                self.hub.set_remote_demand(camera_id, fps)
        self._pushing = demanded

    async def _publish_loop(self) -> None:
        while True:
            await self._out.wait()
            self._out.clear()
            while self._outgoing:
                camera_id = next(iter(self._outgoing))
                message = self._outgoing.pop(camera_id)
                try:
                    await self._redis.publish(self.keys.live(camera_id), message)
                    self.published += 1
                    self.published_bytes += len(message)
                except Exception as exc:
                    self.last_error = f"publish: {type(exc).__name__}: {exc}"

    async def _listen_loop(self) -> None:
        assert self._pubsub is not None
        prefix = self.keys.live(0)[:-1]
        while True:
            if not self._pubsub.subscribed:
                self._subscribed.clear()
                await self._subscribed.wait()
                continue
            try:
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except Exception as exc:
                self.last_error = f"listen: {type(exc).__name__}: {exc}"
                await asyncio.sleep(1.0)
                continue
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else channel
            camera = channel.removeprefix(prefix)
            if not camera.isdigit() or int(camera) not in self._pulling:
                continue  # unsubscribed meanwhile: never served once the camera is local again
            self.received += 1
            self.hub.deliver(int(camera), message["data"])

    def stats(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "watching_remote": sorted(self._pulling),
            "serving_remote": dict(sorted(self._pushing.items())),
            "published": self.published,
            "published_bytes": self.published_bytes,
            "received": self.received,
            "last_error": self.last_error,
        }


def _fps(value: bytes | str) -> float:
    try:
        return float(value)
    except ValueError:
        return 0.0
