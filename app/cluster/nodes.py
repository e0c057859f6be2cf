"""Nodes: the heartbeat row and each node's state (down = no heartbeat within the lease TTL)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from app.cluster.assignment import Snapshot
from app.cluster.schemas import NodeRead

NodeState = Literal["up", "down"]


def state(up: bool) -> NodeState:
    return "up" if up else "down"


def load(cameras: int, capacity: float) -> float:
    return round(cameras / capacity, 3) if capacity > 0 else 0.0


def describe(snap: Snapshot) -> list[NodeRead]:
    """Every node known to the cluster with the cameras it holds a live lease on."""
    cameras: dict[str, list[int]] = {name: [] for name in snap.nodes}
    for lease in sorted(snap.leases.values(), key=lambda lease: lease.camera_id):
        if lease.live and lease.node is not None:
            cameras.setdefault(lease.node, []).append(lease.camera_id)
    out = []
    for name in sorted(cameras):
        node = snap.nodes.get(name)
        capacity = node.capacity if node is not None else 1.0
        ids = cameras[name]
        up = node is not None and node.up
        out.append(
            NodeRead(
                name=name, state=state(up), capacity=capacity, cameras=ids, load=load(len(ids), capacity)
            )
        )
    return out


def single(name: str, capacity: float, camera_ids: Iterable[int]) -> list[NodeRead]:
    """One node, as today: up, with every camera it runs."""
    ids = sorted(camera_ids)
    return [NodeRead(name=name, state="up", capacity=capacity, cameras=ids, load=load(len(ids), capacity))]
