"""Every Redis key and channel the nodes share, under one prefix (tests use their own)."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

DEFAULT_PREFIX = "argus:"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = DEFAULT_PREFIX

    @property
    def demand(self) -> str:
        """ZSET of the whole cluster's live demand: member `demand_member(camera, node)`, score the
        member's expiry (Redis TIME, epoch ms), refreshed by a node whose viewers watch a camera it
        does not run. One key: nodes read it with ZRANGEBYSCORE, never SCAN the keyspace."""
        return f"{self.prefix}demand"

    @property
    def demand_fps(self) -> str:
        """HASH beside `demand`: member -> the fps its node's viewers want (trimmed with the ZSET)."""
        return f"{self.prefix}demand:fps"

    @staticmethod
    def demand_member(camera_id: int, node: str) -> str:
        return f"{camera_id}:{node}"

    @staticmethod
    def parse_demand(member: str) -> tuple[int, str] | None:
        """(camera id, node) of a demand member; None for anything else."""
        camera, sep, node = member.partition(":")
        return (int(camera), node) if sep and camera.isdigit() and node else None

    def live(self, camera_id: int) -> str:
        """Pub/sub channel: the owner's JPEG messages of a camera, only while someone demands them."""
        return f"{self.prefix}live:{camera_id}"

    @property
    def events(self) -> str:
        """Pub/sub channel: events and camera states for every node's /ws/live and event stream."""
        return f"{self.prefix}events"

    def dedup(self, rule_id: int, camera_id: int | None, event_type: str) -> str:
        return f"{self.prefix}dedup:{rule_id}:{camera_id if camera_id is not None else '-'}:{event_type}"

    def digest(self, period: int) -> str:
        return f"{self.prefix}digest:{period}"

    def status(self, camera_id: int) -> str:
        """The owner's CameraStatus JSON of a camera it runs (SET with a TTL, refreshed every second)."""
        return f"{self.prefix}status:{camera_id}"

    @property
    def camera_changes(self) -> str:
        """Pub/sub channel: '<node>:<camera id>' after camera CRUD on a node (the owner ticks at once)."""
        return f"{self.prefix}cameras"

    @property
    def vlm_stream(self) -> str:
        return f"{self.prefix}vlm"

    def vlm_image(self, event_id: str) -> str:
        return f"{self.prefix}vlm:image:{event_id}"


SOCKET_TIMEOUT_S = 5.0  # a Redis that stops answering (connection kept open) fails a command after this
OP_TIMEOUT_S = 2.0  # alert paths (dedup, digest gate) give Redis this long, then decide locally


def connect(url: str) -> Redis:
    """One client (a connection pool) per process; bytes in, bytes out.

    Every read is bounded by `SOCKET_TIMEOUT_S` (pub/sub reads pass their own timeout; a blocking
    XREADGROUP must block for less), keepalive probes notice a peer gone without a FIN, and an idle
    pooled connection is PINGed before reuse."""
    return Redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=SOCKET_TIMEOUT_S,
        socket_keepalive=True,
        health_check_interval=10,
    )
