"""/api/cameras: CRUD, live status and the latest snapshot."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from app.analyzers.detector import Detector
from app.cameras import vad
from app.cameras.manager import MultiCameraManager
from app.cameras.schemas import CameraCreate, CameraRead, CameraStatus, CameraUpdate
from app.cameras.service import CameraService
from app.deps import ApiKeyDep, HubDep, ManagerDep, RuntimeDep, SessionDep
from app.errors import ArgusError
from app.kit.db import complete
from app.kit.openapi import NAME_TAKEN
from app.kit.responses import servable
from app.kit.schemas import DbId

log = logging.getLogger("argus.cameras")
router = APIRouter(prefix="/api/cameras", tags=["cameras"])


def get_service(session: SessionDep, manager: ManagerDep, rt: RuntimeDep) -> CameraService:
    # every runtime part that keeps files per camera (clips, recordings) deletes them with the camera
    return CameraService(session, manager, rt.settings.resolved_media_dir, rt.camera_deleted_hooks())


ServiceDep = Annotated[CameraService, Depends(get_service)]


def _read(camera: object, manager: MultiCameraManager, status: CameraStatus | None = None) -> CameraRead:
    read = CameraRead.model_validate(camera)
    status = status or manager.status(read.id)
    read.state, read.node = status.state, status.node
    return read


@router.get("", summary="List cameras")
async def list_cameras(service: ServiceDep, manager: ManagerDep, _: ApiKeyDep) -> list[CameraRead]:
    cameras = await service.list()
    statuses = await manager.current_statuses([c.id for c in cameras])  # several nodes: as owners say
    # a row stored before free JSON was bounded may not serialise: left out (logged), never a 500 list
    return [r for c in cameras if servable(r := _read(c, manager, statuses.get(c.id)), log, "camera")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Add a camera and start watching it",
    responses=NAME_TAKEN,
)
async def create_camera(
    body: CameraCreate, service: ServiceDep, session: SessionDep, manager: ManagerDep, _: ApiKeyDep
) -> CameraRead:
    camera = await service.create(body)
    await complete(session)  # committed and applied: the response shows the pipeline's state
    return _read(camera, manager)


@router.get("/{camera_id}", summary="One camera")
async def get_camera(camera_id: DbId, service: ServiceDep, manager: ManagerDep, _: ApiKeyDep) -> CameraRead:
    camera = await service.get(camera_id)
    return _read(camera, manager, (await manager.current_statuses([camera_id])).get(camera_id))


@router.patch(
    "/{camera_id}",
    summary="Change a camera; its pipeline restarts with the new settings",
    responses=NAME_TAKEN,
)
async def update_camera(
    camera_id: DbId,
    body: CameraUpdate,
    service: ServiceDep,
    session: SessionDep,
    manager: ManagerDep,
    rt: RuntimeDep,
    _: ApiKeyDep,
) -> CameraRead:
    url = (await service.get(camera_id)).url
    camera = await service.update(camera_id, body)
    await complete(session)  # committed and applied: the response shows the pipeline's state
    if camera.url != url:  # another scene: what was normal for the old one means nothing here
        vad.reset(manager, rt.settings, camera_id)
    return _read(camera, manager)


@router.delete("/{camera_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Stop and remove a camera")
async def delete_camera(camera_id: DbId, service: ServiceDep, _: ApiKeyDep) -> Response:
    await service.delete(camera_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{camera_id}/status", summary="Stream state, rates, drops and reconnects")
async def camera_status(
    camera_id: DbId, service: ServiceDep, manager: ManagerDep, _: ApiKeyDep
) -> CameraStatus:
    await service.get(camera_id)
    # several nodes: the node read now, and another node's camera as its owner published it
    status = await manager.current_status(camera_id)
    learning = vad.learning(manager, camera_id)
    status.vad = None if learning is None else learning.model_dump()
    pipeline = manager.get(camera_id)
    detector = next((a for a in pipeline.analyzers if isinstance(a, Detector)), None) if pipeline else None
    status.detector = None if detector is None else detector.status()
    return status


@router.post(
    "/{camera_id}/vad/reset",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Forget what the VAD learned is normal for this camera; it learns again from now",
)
async def reset_vad(
    camera_id: DbId, service: ServiceDep, manager: ManagerDep, rt: RuntimeDep, _: ApiKeyDep
) -> Response:
    await service.get(camera_id)
    vad.reset(manager, rt.settings, camera_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{camera_id}/vad/normality.png",
    summary="Where activity is normal at this hour, drawn over the latest frame",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
async def vad_normality(
    camera_id: DbId, service: ServiceDep, manager: ManagerDep, rt: RuntimeDep, _: ApiKeyDep
) -> Response:
    await service.get(camera_id)
    png = await vad.normality_png(manager, rt.settings, camera_id)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.get(
    "/{camera_id}/snapshot.jpg",
    summary="The newest frame as JPEG",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "no frame yet"}},
)
async def camera_snapshot(
    camera_id: DbId, service: ServiceDep, manager: ManagerDep, hub: HubDep, _: ApiKeyDep
) -> Response:
    await service.get(camera_id)
    pipeline = manager.get(camera_id)
    if pipeline is not None:
        pipeline.offer_latest()
    jpeg = await hub.snapshot_jpeg(camera_id)
    if jpeg is None:
        raise ArgusError(f"camera {camera_id} has no frame yet", 404)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})
