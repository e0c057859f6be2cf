"""/api/cameras/{camera_id}/restream: publish a camera's annotated video to an RTSP/RTMP server."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Response

from app.deps import ApiKeyDep, RuntimeDep, SessionDep
from app.errors import NotFound
from app.kit.db import after_commit
from app.kit.openapi import Responses
from app.kit.schemas import DbId
from app.models import Restream
from app.restream.repository import RestreamRepository
from app.restream.restreamer import spec_of
from app.restream.schemas import RestreamConfig, RestreamRead

router = APIRouter(prefix="/api/cameras", tags=["restream"])
_NOT_FOUND: Responses = {404: {"description": "No such camera, or it has no restream"}}


@router.get("/{camera_id}/restream", summary="The camera's restream and its state", responses=_NOT_FOUND)
async def get_restream(camera_id: DbId, session: SessionDep, _: ApiKeyDep) -> RestreamRead:
    row = await RestreamRepository(session).get(camera_id)
    if row is None:
        raise NotFound("restream of camera", camera_id)
    return RestreamRead.model_validate(row)


@router.put(
    "/{camera_id}/restream",
    summary="Publish the camera's analysed video with overlays (H.264) to an RTSP or RTMP server",
    description=(
        "Argus connects to `url` and publishes (RTSP ANNOUNCE/RECORD, or RTMP) while `enabled`; it "
        "reconnects with backoff when the server goes away. Encoding runs only while enabled; frames "
        "the encoder cannot keep up with are dropped and counted (`/api/health` restream)."
    ),
    responses={404: {"description": "No such camera"}},
)
async def put_restream(
    camera_id: DbId, body: RestreamConfig, session: SessionDep, rt: RuntimeDep, _: ApiKeyDep
) -> RestreamRead:
    repo = RestreamRepository(session)
    camera = await repo.camera(camera_id)
    if camera is None:
        raise NotFound("camera", camera_id)
    row = await repo.get(camera_id) or Restream(camera_id=camera_id)
    for key, value in body.model_dump().items():
        setattr(row, key, value)
    await repo.add(row)
    after_commit(session, partial(rt.restream.apply, camera_id, spec_of(row, camera)))  # runtime follows db
    return RestreamRead.model_validate(row)


@router.delete(
    "/{camera_id}/restream", status_code=204, summary="Stop and forget the restream", responses=_NOT_FOUND
)
async def delete_restream(camera_id: DbId, session: SessionDep, rt: RuntimeDep, _: ApiKeyDep) -> Response:
    repo = RestreamRepository(session)
    row = await repo.get(camera_id)
    if row is None:
        raise NotFound("restream of camera", camera_id)
    await repo.delete(row)
    after_commit(session, partial(rt.restream.apply, camera_id, None))
    return Response(status_code=204)
