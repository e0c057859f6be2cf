"""LiveRelay over the real Redis: three hubs as three nodes; node A runs camera 7, a viewer on node B
watches it, node C has no viewer. Frames flow A -> B only while B watches, and never to C."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from app.cluster.keys import Keys
from app.cluster.relay import LiveRelay
from app.kit.tasks import cancel_and_wait, spawn
from app.live.hub import Client, LiveHub
from app.live.protocol import unpack_frame
from app.stream.frame import Frame
from tests.support.viewer import moving_frames
from tests.support.waiting import eventually

pytestmark = pytest.mark.redis
CAMERA = 7


@dataclass
class Node:
    hub: LiveHub
    relay: LiveRelay


@contextlib.asynccontextmanager
async def node(redis: Redis, keys: Keys, name: str, is_local: Callable[[int], bool]) -> AsyncIterator[Node]:
    async with LiveHub(fps=5.0, max_width=160) as hub:
        relay = LiveRelay(redis, hub, name, is_local, keys=keys, demand_ttl_s=1.0, refresh_s=0.2)
        async with relay:
            yield Node(hub, relay)


async def feed(hub: LiveHub) -> None:
    """Camera 7's source on node A: a new frame every 50 ms."""
    images = moving_frames(320, 180, count=8)
    seq = 0
    while True:
        hub.offer(Frame(CAMERA, seq, time.time(), images[seq % 8], 320, 180))
        seq += 1
        await asyncio.sleep(0.05)


async def frames(client: Client, count: int, timeout: float = 10.0) -> list[dict[str, object]]:
    headers = []
    async with asyncio.timeout(timeout):
        while len(headers) < count:
            message = await client.next_message(timeout)
            if isinstance(message, bytes):
                headers.append(unpack_frame(message)[0])
    return headers


async def test_a_viewer_on_one_node_watches_a_camera_another_node_runs(redis: Redis, keys: Keys) -> None:
    async with (
        node(redis, keys, "a", lambda c: c == CAMERA) as a,
        node(redis, keys, "b", lambda c: False) as b,
        node(redis, keys, "c", lambda c: False) as c,
    ):
        feeder = spawn(feed(a.hub), name="feed")
        try:
            await asyncio.sleep(0.6)  # several refreshes with nobody watching
            assert a.relay.published == 0 and a.hub.demand(CAMERA) == 0  # nothing encoded, nothing sent

            viewer = b.hub.connect()
            b.hub.subscribe(viewer, [CAMERA], 5)
            got = await frames(viewer, 5)
            assert all(h["camera_id"] == CAMERA for h in got)
            seqs = [h["seq"] for h in got]
            assert seqs == sorted(seqs) and len(set(seqs)) == 5
            assert a.hub.stats()["cameras"][CAMERA]["encodes"] > 0  # encoded once, on the owner
            assert b.hub.stats()["encodes"] == 0
            numsub = dict(await redis.pubsub_numsub(keys.live(CAMERA)))
            assert numsub[keys.live(CAMERA).encode()] == 1  # node B alone listens
            assert c.relay.received == 0 and c.relay.stats()["watching_remote"] == []

            b.hub.disconnect(viewer)
            await eventually(lambda: a.hub.demand(CAMERA) == 0, 5)  # demand removed: A stops encoding
            assert await redis.zscore(keys.demand, keys.demand_member(CAMERA, "b")) is None
            published = a.relay.published
            await asyncio.sleep(0.6)
            assert a.relay.published == published
            assert c.relay.received == 0
        finally:
            await cancel_and_wait(feeder)


async def test_a_camera_that_moves_to_the_viewers_node_is_served_locally(redis: Redis, keys: Keys) -> None:
    owner = {"node": "a"}
    async with (
        node(redis, keys, "a", lambda c: owner["node"] == "a") as a,
        node(redis, keys, "b", lambda c: owner["node"] == "b") as b,
    ):
        feeders = [spawn(feed(a.hub), name="feed-a")]
        try:
            viewer = b.hub.connect()
            b.hub.subscribe(viewer, [CAMERA], 5)
            await frames(viewer, 2)
            assert b.relay.received > 0

            owner["node"] = "b"  # failover: B runs the camera now
            feeders.append(spawn(feed(b.hub), name="feed-b"))
            await eventually(lambda: not b.relay.stats()["watching_remote"] and a.hub.demand(CAMERA) == 0, 5)
            received = b.relay.received
            await frames(viewer, 3)  # from B's own ticker
            assert b.relay.received == received and b.hub.stats()["cameras"][CAMERA]["encodes"] > 0
        finally:
            for task in feeders:
                await cancel_and_wait(task)


async def test_a_dead_viewer_node_s_demand_expires(redis: Redis, keys: Keys) -> None:
    async with node(redis, keys, "a", lambda c: c == CAMERA) as a:
        seconds, micros = await redis.time()  # a node killed while watching: its member expires in 600 ms
        member = keys.demand_member(CAMERA, "gone")
        await redis.zadd(keys.demand, {member: seconds * 1000 + micros // 1000 + 600})
        await redis.hset(keys.demand_fps, member, "5")
        await eventually(lambda: a.hub.demand(CAMERA) == 5, 5)
        await eventually(lambda: a.hub.demand(CAMERA) == 0, 5)
