"""/api/nodes and POST /api/cameras/{id}/move: the cluster seen from any node (one node: itself)."""

from __future__ import annotations

from fastapi import APIRouter

from app.auth.deps import AdminKeyDep
from app.cameras.repository import CameraRepository
from app.cluster import service
from app.cluster.schemas import CameraMove, CameraMoved, NodeRead
from app.deps import ApiKeyDep, RuntimeDep, SessionDep
from app.kit.schemas import DbId

router = APIRouter(tags=["cluster"])


@router.get("/api/nodes", summary="The nodes, their state and the cameras each runs")
async def list_nodes(rt: RuntimeDep, session: SessionDep, _: ApiKeyDep) -> list[NodeRead]:
    settings = rt.settings
    if not settings.cluster:
        return service.single_node(settings.node_name, settings.node_capacity, rt.manager.camera_ids())
    return await service.list_nodes(session, settings.lease_ttl_s)


@router.post(
    "/api/cameras/{camera_id}/move",
    summary="Hand a camera to another node (its owner stops it, then the named node starts it)",
    responses={404: {"description": "no such camera"}, 422: {"description": "unknown or down node"}},
)
async def move_camera(
    camera_id: DbId, body: CameraMove, rt: RuntimeDep, session: SessionDep, _: AdminKeyDep
) -> CameraMoved:
    settings = rt.settings
    if not settings.cluster:
        known = await CameraRepository(session).get(camera_id) is not None
        return service.move_single(settings.node_name, camera_id, body.node, known)
    return await service.move_camera(session, camera_id, body.node, settings.lease_ttl_s)
