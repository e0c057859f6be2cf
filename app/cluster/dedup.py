"""Cluster-wide alert dedup windows and the one node that sends each digest, on Redis.

RedisDedup is the alert engine's DedupWindows across nodes: `SET dedup:<rule>:<camera>:<type>
<alert ids> NX PX <window>` decides which node's hit is first in the window, whatever node raised it;
a later hit reads the first one's alert ids back, so the suppressed count lands on the kept alert rows
(in the shared database). Redis unreachable, or not answering within `OP_TIMEOUT_S` (a hung server
that keeps the connection open): the node's own local windows decide meanwhile (at worst one alert
per node per window, never none).

DigestLock: before claiming digest rows, a dispatcher asks `may_send()`; `SET digest:<period> <node>
NX` per digest period elects one node per period, so one digest POST per webhook and period leaves
the cluster (the rows' leases already stop two nodes sending the same row). A holder that dies
mid-period delays its digests to the next period, when another node wins; with Redis unreachable (or
silent for `OP_TIMEOUT_S`) every node may send (a digest split in two, never one lost).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from redis.asyncio import Redis

from app.alerts.dedup import DedupKey, Deduplicator
from app.cluster.keys import OP_TIMEOUT_S, Keys

log = logging.getLogger("argus.cluster.dedup")
OPENED_MAX = 10_000  # windows this node opened, remembered for release()
RETRY_AFTER_S = 5.0  # after Redis failed or hung, decide locally this long before asking it again
# delete a window only while it still holds this node's alerts (another node may have opened the next)
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class RedisDedup:
    def __init__(
        self,
        redis: Redis,
        *,
        keys: Keys | None = None,
        fallback: Deduplicator | None = None,
        timeout_s: float = OP_TIMEOUT_S,
    ) -> None:
        self._redis = redis
        self.keys = keys or Keys()
        self.fallback = fallback or Deduplicator()
        self._opened: OrderedDict[str, tuple[str, str]] = OrderedDict()  # alert id -> (key, value)
        self._release = redis.register_script(_RELEASE)
        self.fallbacks = 0
        self.timeout_s = timeout_s
        self._down_until = 0.0  # monotonic: Redis failed; local windows until then (a storm never waits)

    async def admit(self, key: DedupKey, window_s: float, alert_ids: list[str]) -> list[str] | None:
        if window_s <= 0:
            return None
        name = self.keys.dedup(*key)
        value = json.dumps(alert_ids)
        if time.monotonic() < self._down_until:
            self.fallbacks += 1
            return await self.fallback.admit(key, window_s, alert_ids)
        try:
            async with asyncio.timeout(self.timeout_s):  # a hung Redis must not hold the alert up
                return await self._admit(name, value, window_s, alert_ids)
        except Exception as exc:  # Redis away or silent: this node's own windows decide meanwhile
            self.fallbacks += 1
            self._down_until = time.monotonic() + RETRY_AFTER_S
            log.warning(
                "cluster dedup: Redis unavailable (%s: %s); deciding locally",
                type(exc).__name__,
                str(exc) or "no answer",
            )
            return await self.fallback.admit(key, window_s, alert_ids)

    async def _admit(self, name: str, value: str, window_s: float, alert_ids: list[str]) -> list[str] | None:
        for _ in range(3):  # SET lost and the window expired before GET: try again
            if await self._redis.set(name, value, nx=True, px=max(1, round(window_s * 1000))):
                for alert_id in alert_ids:
                    self._opened[alert_id] = (name, value)
                while len(self._opened) > OPENED_MAX:
                    self._opened.popitem(last=False)
                return None
            held = await self._redis.get(name)
            if held is not None:
                return [str(i) for i in json.loads(held)]
        return None

    async def release(self, alert_ids: set[str]) -> None:
        await self.fallback.release(alert_ids)
        windows = {self._opened.pop(a) for a in alert_ids if a in self._opened}
        for name, value in windows:
            try:
                async with asyncio.timeout(self.timeout_s):
                    await self._release(keys=[name], args=[value])
            except Exception as exc:  # the window then lasts its time: a hit suppressed, not lost
                log.warning("cluster dedup: releasing %s failed: %s", name, exc)


class DigestLock:
    def __init__(
        self,
        redis: Redis,
        node: str,
        interval_s: float,
        *,
        keys: Keys | None = None,
        clock: Callable[[], float] = time.time,
        timeout_s: float = OP_TIMEOUT_S,
    ) -> None:
        self._redis = redis
        self.node = node
        self.interval_s = interval_s
        self.keys = keys or Keys()
        self._clock = clock
        self._period: int | None = None
        self._mine = False
        self.timeout_s = timeout_s
        self._down_until = 0.0  # monotonic: Redis failed; this node may send until then

    async def may_send(self) -> bool:
        """True when this node sends the digests of the current period (asked once per claim round;
        Redis is asked once per period, the answer kept until the next)."""
        period = int(self._clock() // self.interval_s)
        if period == self._period:
            return self._mine
        if time.monotonic() < self._down_until:
            return True
        name = self.keys.digest(period)
        try:
            async with asyncio.timeout(self.timeout_s):  # a hung Redis must not hold the claim round up
                won = await self._redis.set(name, self.node, nx=True, px=round(self.interval_s * 2000))
                self._mine = bool(won) or await self._redis.get(name) == self.node.encode()
        except Exception as exc:
            log.warning(
                "digest lock: Redis unavailable (%s); this node may send digests",
                str(exc) or type(exc).__name__,
            )
            self._down_until = time.monotonic() + RETRY_AFTER_S
            return True  # not remembered: asked again once RETRY_AFTER_S passed
        self._period = period
        if self._mine:
            log.debug("digest period %d: sent by this node (%s)", period, self.node)
        return self._mine
