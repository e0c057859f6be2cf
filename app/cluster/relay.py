"""LiveRelay: a viewer on any node watches any camera, encoded once by the node that runs it.

Demand: one ZSET per cluster prefix, `demand`, member `<camera>:<node>` scored with its expiry (Redis
TIME, epoch ms) and its fps in the `demand:fps` hash beside it. A node whose local viewers watch a
camera it does not run re-adds its member every `refresh_s` (ZADD with a short TTL ahead; ZREM when
its last viewer leaves; a dead node's member is trimmed by ZREMRANGEBYSCORE once expired). Supply: the
same one-round-trip script returns the live members (ZRANGEBYSCORE now..+inf), so a node reads every
node's demand from one key (no SCAN of the keyspace); for the demanded cameras it runs, the hub
encodes once per tick as for a local viewer and each JPEG message is PUBLISHed on `live:<camera>`
(latest wins while a publish is in flight). Relay: the demanding node SUBSCRIBEs to that channel and
hands each message to its hub, which serves local viewers with the same one-slot-per-client rule as
local frames. A node without viewers for a camera neither subscribes nor receives anything for it,
and nothing is published for a camera nobody demands.

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
# KEYS: demand zset, fps hash. ARGV: ttl ms, count of members to add, (member, fps) pairs, then
# members to remove. Trims expired members, refreshes this node's, returns the live ones' (member, fps).
_DEMAND = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  redis.call('HDEL', KEYS[2], member)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local ttl = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
for i = 0, n - 1 do
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[3 + 2 * i])
  redis.call('HSET', KEYS[2], ARGV[3 + 2 * i], ARGV[4 + 2 * i])
end
for i = 3 + 2 * n, #ARGV do
  redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('HDEL', KEYS[2], ARGV[i])
end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #last == 0 then
  return {}
end
redis.call('PEXPIREAT', KEYS[1], last[2])  -- the keys go once nobody refreshes any more
redis.call('PEXPIREAT', KEYS[2], last[2])
local out = {}
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  out[#out + 1] = member
  out[#out + 1] = redis.call('HGET', KEYS[2], member) or '0'
end
return out
"""


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
        self._demand = redis.register_script(_DEMAND)

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
        with contextlib.suppress(Exception):  # best effort: the members expire anyway
            if self._pulling:
                members = [self.keys.demand_member(c, self.node) for c in self._pulling]
                async with asyncio.timeout(2.0):
                    await self._redis.zrem(self.keys.demand, *members)
                    await self._redis.hdel(self.keys.demand_fps, *members)
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
        """Renew this node's demand and channel subscriptions; read every node's demand once."""
        assert self._pubsub is not None
        wanted = {c: fps for c, fps in self._local.items() if not self._is_local(c)}
        dropped = self._pulling - wanted.keys()
        args: list[str | int] = [self._ttl_ms, len(wanted)]
        for camera_id, fps in wanted.items():
            args += [self.keys.demand_member(camera_id, self.node), f"{fps:g}"]
        args += [self.keys.demand_member(c, self.node) for c in dropped]
        live = await self._demand(keys=[self.keys.demand, self.keys.demand_fps], args=args)
        added = wanted.keys() - self._pulling
        if added:
            await self._pubsub.subscribe(*[self.keys.live(c) for c in added])
        if dropped:
            await self._pubsub.unsubscribe(*[self.keys.live(c) for c in dropped])
        self._pulling = set(wanted)
        if self._pulling:
            self._subscribed.set()
        self._serve(live)

    def _serve(self, live: list[bytes]) -> None:
        """Encode for the cameras this node runs that other nodes demand (flat member, fps list)."""
        demanded: dict[int, float] = {}
        for raw, value in zip(live[::2], live[1::2], strict=True):
            parsed = self.keys.parse_demand(raw.decode() if isinstance(raw, bytes) else raw)
            if parsed is not None and parsed[1] != self.node and self._is_local(parsed[0]):
                demanded[parsed[0]] = max(demanded.get(parsed[0], 0.0), _fps(value))
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
