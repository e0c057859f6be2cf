"""Every Redis key and channel the nodes share, under one prefix (tests use their own)."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

DEFAULT_PREFIX = "argus:"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = DEFAULT_PREFIX

    def demand(self, camera_id: int, node: str) -> str:
        """Set (with a short TTL, refreshed) by a node whose viewers watch a camera it does not run."""
        return f"{self.prefix}demand:{camera_id}:{node}"

    @property
    def demand_pattern(self) -> str:
        return f"{self.prefix}demand:*"

    def parse_demand(self, key: str) -> tuple[int, str] | None:
        """(camera id, node) of a demand key; None for anything else."""
        rest = key.removeprefix(f"{self.prefix}demand:")
        camera, sep, node = rest.partition(":")
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

    @property
    def vlm_stream(self) -> str:
        return f"{self.prefix}vlm"

    def vlm_image(self, event_id: str) -> str:
        return f"{self.prefix}vlm:image:{event_id}"


def connect(url: str) -> Redis:
    """One client (a connection pool) per process; bytes in, bytes out."""
    return Redis.from_url(url, health_check_interval=10, socket_connect_timeout=5)
