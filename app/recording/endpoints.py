"""/api/cameras/{id}/recordings (list, one segment's MP4) and /api/cameras/{id}/export.mp4 (a span joined)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import computed_field
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.background import BackgroundTask

from app.cameras.repository import CameraRepository
from app.deps import ApiKeyDep, RuntimeDep, SessionDep
from app.errors import ArgusError, Invalid, NotFound
from app.kit.schemas import DbId, IsoDateTime, Schema
from app.models import Recording
from app.recording.export import SegmentRef, export
from app.recording.repository import RecordingRepository

router = APIRouter(prefix="/api/cameras", tags=["recordings"])
EXPORTS = "media/exports"  # under DATA_DIR; each file lives only while it is sent
DEFAULT_LIST_SPAN = timedelta(hours=1)
_EARLIEST = datetime.min.replace(tzinfo=UTC)
Since = Annotated[IsoDateTime | None, Query(description="Start of the span (ISO 8601); default until - 1 h")]
Until = Annotated[IsoDateTime | None, Query(description="End of the span (ISO 8601); default now")]


class RecordingRead(Schema):
    id: int
    camera_id: int
    started_at: datetime
    ended_at: datetime | None  # None while it is written
    bytes: int
    complete: bool

    @computed_field  # type: ignore[prop-decorator]
    @property
    def url(self) -> str | None:
        """The segment's MP4 (fragmented; HTTP Range), once it is finished."""
        return f"/api/cameras/{self.camera_id}/recordings/{self.id}.mp4" if self.complete else None


async def _camera(session: AsyncSession, camera_id: int) -> None:
    if not await CameraRepository(session).exists(camera_id):
        raise NotFound("camera", camera_id)


def _span(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    until = _utc(until, "until") if until else datetime.now(UTC)
    since = _utc(since, "since") if since else max(until, _EARLIEST + DEFAULT_LIST_SPAN) - DEFAULT_LIST_SPAN
    if until <= since:
        raise Invalid("until must be after since", field="until")
    return since, until


def _utc(value: datetime, field: str) -> datetime:
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):  # year 1 with an eastern offset, year 9999 with a western one
        raise Invalid(f"{field} is out of range", field=field) from None


async def _covering(
    session: AsyncSession, camera_id: int, since: datetime, until: datetime
) -> list[Recording]:
    """Segments overlapping [since, until), oldest first (one being written counts as up to now)."""
    return list(await RecordingRepository(session).covering(camera_id, since, until))


@router.get("/{camera_id}/recordings", summary="The camera's continuous-recording segments in a span")
async def list_recordings(
    camera_id: DbId, session: SessionDep, _: ApiKeyDep, since: Since = None, until: Until = None
) -> list[RecordingRead]:
    await _camera(session, camera_id)
    since_, until_ = _span(since, until)
    return [RecordingRead.model_validate(r) for r in await _covering(session, camera_id, since_, until_)]


@router.get(
    "/{camera_id}/recordings/{recording_id}.mp4",
    summary="One segment's MP4 (HTTP Range supported)",
    response_class=FileResponse,
    responses={
        200: {"content": {"video/mp4": {}}},
        404: {"description": "No such camera or segment, or its file is gone"},
        425: {"description": "The segment is still being written: retry after `Retry-After` seconds"},
    },
)
async def get_segment(
    camera_id: DbId, recording_id: DbId, session: SessionDep, rt: RuntimeDep, _: ApiKeyDep
) -> Response:
    row = await RecordingRepository(session).get(recording_id)
    if row is None or row.camera_id != camera_id:
        raise NotFound("recording", recording_id)
    if not row.complete:
        wait = max(1, round(rt.settings.segment_s - (datetime.now(UTC) - row.started_at).total_seconds()))
        body = {"detail": "the segment is still being written", "retry_after": wait}
        return JSONResponse(body, status_code=425, headers={"Retry-After": str(wait)})
    path = _inside(rt.settings.data_dir, row.path)
    if path is None:
        raise NotFound("file of recording", recording_id)
    return FileResponse(path, media_type="video/mp4", headers={"Cache-Control": "private, max-age=3600"})


@router.get(
    "/{camera_id}/export.mp4",
    summary="The recording of a span as one MP4 (segments joined without re-encoding, cut at keyframes)",
    response_class=FileResponse,
    responses={
        200: {"content": {"video/mp4": {}}},
        404: {"description": "No such camera, or nothing recorded in the span"},
        422: {"description": "since/until missing, reversed, or the span longer than ARGUS_EXPORT_MAX_S"},
    },
)
async def export_mp4(
    camera_id: DbId,
    session: SessionDep,
    rt: RuntimeDep,
    _: ApiKeyDep,
    since: Annotated[IsoDateTime, Query(description="Start (ISO 8601): from the keyframe at or before it")],
    until: Annotated[IsoDateTime, Query(description="End (ISO 8601), exclusive")],
) -> Response:
    await _camera(session, camera_id)
    since_, until_ = _span(since, until)
    limit = rt.settings.export_max_s
    if (until_ - since_).total_seconds() > limit:
        raise Invalid(f"the span may cover at most {limit:g} s (ARGUS_EXPORT_MAX_S)", field="until")
    data_dir = rt.settings.data_dir
    refs = [
        SegmentRef(path, r.started_at.timestamp())
        for r in await _covering(session, camera_id, since_, until_)
        if (path := _inside(data_dir, r.path)) is not None
    ]
    if not refs:
        raise ArgusError(f"camera {camera_id} has no recording between {since_} and {until_}", 404)
    out = data_dir / EXPORTS / f"{uuid.uuid4().hex}.mp4"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        result = await asyncio.to_thread(export, refs, since_.timestamp(), until_.timestamp(), out)
    except Exception:
        out.unlink(missing_ok=True)
        raise
    if result.packets == 0:
        out.unlink(missing_ok=True)
        raise ArgusError(f"camera {camera_id} has no recording between {since_} and {until_}", 404)
    name = f"camera-{camera_id}-{since_:%Y%m%dT%H%M%SZ}.mp4"
    return FileResponse(
        out,
        media_type="video/mp4",
        filename=name,
        content_disposition_type="inline",
        background=BackgroundTask(out.unlink, missing_ok=True),
    )


def _inside(data_dir: Path, rel: str) -> Path | None:
    """The file a row names, if it exists inside DATA_DIR (rows are never trusted with paths)."""
    root = Path(data_dir).resolve()
    path = (root / rel).resolve()
    return path if path.is_relative_to(root) and path.is_file() else None
