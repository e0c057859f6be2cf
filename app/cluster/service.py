"""Cluster rules behind the API: list the nodes, move a camera by hand. No SQL here, no HTTP."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from app.cluster import nodes
from app.cluster.repository import ClusterRepository
from app.cluster.schemas import CameraMoved, NodeRead
from app.errors import Conflict, Invalid, NotFound


async def list_nodes(session: AsyncSession, ttl_s: float) -> list[NodeRead]:
    return nodes.describe(await ClusterRepository(session).snapshot(ttl_s))


def single_node(name: str, capacity: float, running: Iterable[int]) -> list[NodeRead]:
    return nodes.single(name, capacity, running)


async def move_camera(session: AsyncSession, camera_id: int, to_node: str, ttl_s: float) -> CameraMoved:
    """Ask the camera's owner to hand it to `to_node`: the owner releases it at its next tick (pipeline
    stopped first) and only `to_node` may acquire it; done within about two renew periods."""
    repo = ClusterRepository(session)
    await repo.ensure_leases()  # a camera made a moment ago may have no lease row yet
    snap = await repo.snapshot(ttl_s)
    camera = snap.cameras.get(camera_id)
    if camera is None:
        raise NotFound("camera", camera_id)
    target = snap.nodes.get(to_node)
    if target is None or not target.up:
        raise Invalid(f"node {to_node!r} is not up", field="node")
    if camera.pinned_node not in (None, to_node):
        raise Conflict(f"camera {camera_id} is pinned to node {camera.pinned_node!r}: unpin it first")
    owner = snap.owner(camera_id)
    # always written: a move back to the owner clears an earlier request that was not carried out yet
    await repo.request_move(camera_id, to_node if owner != to_node else None)
    return CameraMoved(camera_id=camera_id, node=to_node, from_node=owner)


def move_single(name: str, camera_id: int, to_node: str, known: bool) -> CameraMoved:
    """One node: a camera can only 'move' to this node (a no-op)."""
    if not known:
        raise NotFound("camera", camera_id)
    if to_node != name:
        raise Invalid(f"node {to_node!r} is not up (one node: {name!r})", field="node")
    return CameraMoved(camera_id=camera_id, node=name, from_node=name)
