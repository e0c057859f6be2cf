"""The Redis half of cluster mode, wired by the lifespan in one call when ARGUS_REDIS_URL is set.

Live relay, event/state fan-out, cluster-wide dedup windows, the digest lock and the VLM work stream
attach to parts the lifespan already built (bus, live hub, event stream, alert engine, dispatcher);
on a single node none of this is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from app.alerts import AlertEngine, WebhookDispatcher
from app.cameras.schemas import CameraStatus
from app.cluster.dedup import DigestLock, RedisDedup
from app.cluster.fanout import EventFanout
from app.cluster.keys import Keys, connect
from app.cluster.relay import LiveRelay
from app.cluster.status import StatusBoard
from app.cluster.vlm_jobs import VlmJobQueue
from app.config import Settings
from app.events.bus import EventBus
from app.events.stream import EventStreamHub
from app.events.types import NewEvent
from app.integrations.vlm import VlmDescriber
from app.live.hub import LiveHub

# Bus subscribers a VLM worker's description must not reach again on the camera's node: the worker
# stored it, the fan-out showed it on every node's live view and stream, and it describes nothing new.
ALREADY_DONE = ("event_logger", "live", "event_stream", "cluster", "vlm", "clips")


@dataclass
class RedisParts:
    redis: Redis
    fanout: EventFanout
    relay: LiveRelay
    dedup: RedisDedup
    digests: DigestLock
    vlm_jobs: VlmJobQueue | None
    board: StatusBoard

    def stats(self) -> dict[str, Any]:
        return {
            "fanout": self.fanout.stats(),
            "relay": self.relay.stats(),
            "dedup_fallbacks": self.dedup.fallbacks,
            "vlm_jobs": self.vlm_jobs.stats() if self.vlm_jobs is not None else None,
        }


async def enter_redis_parts(
    stack: AsyncExitStack,
    settings: Settings,
    *,
    bus: EventBus,
    hub: LiveHub,
    event_stream: EventStreamHub,
    alert_engine: AlertEngine,
    dispatcher: WebhookDispatcher,
    runs_camera: Callable[[int], bool],
    running: Callable[[], Iterable[CameraStatus]] = list,
    keys: Keys | None = None,
) -> RedisParts:
    """Build and attach every Redis part; each stops (reverse order) when `stack` closes.

    `runs_camera(id)`: whether this node runs the camera now (its lease), asked on every relay refresh.
    `running()`: the statuses of the cameras this node runs, published every second for the other nodes'
    /api/cameras (the member's `board`, set by the lifespan, reads them and carries camera-change signals).
    In cluster mode the lifespan skips the in-process VLM describer: events go to the work stream.
    """
    keys = keys or Keys(settings.redis_prefix)
    node = settings.node_name
    redis = connect(settings.redis_url)
    stack.push_async_callback(redis.aclose)

    def worker_update(event: NewEvent) -> None:
        """A worker's description: the camera's node raises what it raises (alerts, MQTT), once."""
        if event.camera_id is not None and runs_camera(event.camera_id):
            bus.publish(event, skip=ALREADY_DONE)

    fanout = await stack.enter_async_context(
        EventFanout(
            redis,
            node,
            deliver=[hub.publish_event, event_stream.publish],  # live views only: never the bus
            receive_state=hub.receive_state,
            worker_update=worker_update,
            keys=keys,
        )
    )
    bus.subscribe("cluster", fanout.publish)  # queued: Redis is never in the publisher's path
    hub.on_state = fanout.state_changed
    relay = await stack.enter_async_context(LiveRelay(redis, hub, node, runs_camera, keys=keys))
    dedup = RedisDedup(redis, keys=keys)
    alert_engine.dedup = dedup
    digests = DigestLock(redis, node, settings.digest_interval_s, keys=keys)
    dispatcher.digest_gate = digests.may_send
    vlm_jobs: VlmJobQueue | None = None
    if settings.vlm_base_url:
        describer = VlmDescriber.from_settings(settings, bus)  # its selection rule and snapshot reader
        vlm_jobs = await stack.enter_async_context(VlmJobQueue(redis, describer, keys=keys))
        bus.subscribe("vlm", vlm_jobs.consider, direct=True)  # consider() only enqueues, never blocks
    board = await stack.enter_async_context(
        StatusBoard(redis, node, running, ttl_s=2 * settings.lease_ttl_s / 3, keys=keys)
    )
    return RedisParts(redis, fanout, relay, dedup, digests, vlm_jobs, board)
