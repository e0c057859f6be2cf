"""/api/events: list (filters, cursor pages, newest first), get, snapshot; POST ingests from other systems."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.cameras.repository import CameraRepository
from app.deps import ApiKeyDep, RuntimeDep, SessionDep
from app.errors import Invalid, NotFound
from app.events.repository import EventFilter, EventRepository
from app.events.schemas import EVENT_TYPE_PATTERN, EventAccepted, EventIngest, EventRead
from app.events.snapshots import load_snapshot
from app.events.types import NewEvent, utcnow
from app.kit.openapi import Responses
from app.kit.repository import InvalidCursor
from app.kit.responses import page_response, serialised
from app.kit.schemas import CursorPage, DbId, IsoDateTime
from app.kit.severity import Severity
from app.models import Event

log = logging.getLogger("argus.events")
router = APIRouter(prefix="/api/events", tags=["events"])

# Event ids are uuid hex; the pattern keeps NUL and other junk away from the database (PostgreSQL 500s).
EventId = Annotated[
    str, Path(max_length=64, pattern=r"^[\w-]+$", examples=["3f2c9e0b7d5a4f1e9c8b6a5d4e3f2a1b"])
]
_NOT_FOUND: Responses = {404: {"description": "No such event", "content": {"application/json": {}}}}
_UNAVAILABLE: Responses = {
    503: {"description": "Not stored: the database cannot take writes now; retry later"}
}
_INVALID: Responses = {422: {"description": "A parameter is invalid; `field` (or `loc`) names it"}}


def _utc(v: datetime | None) -> datetime | None:
    if v is None:
        return None
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


@router.get(
    "",
    summary="List events, newest first",
    description=(
        "Filters combine with AND. `severity` matches exactly; `min_severity` keeps that severity and "
        "worse (low < medium < high < critical). `since` is inclusive and `until` exclusive, on "
        "`started_at` (ISO 8601; UTC when no offset). Pass the `next_cursor` of a page as `cursor` "
        "to get the next one; it is null on the last page."
    ),
    responses=_INVALID,
    response_model=CursorPage[EventRead],
)
async def list_events(
    session: SessionDep,
    _: ApiKeyDep,
    camera_id: Annotated[DbId | None, Query(examples=[1])] = None,
    type: Annotated[
        str | None, Query(max_length=64, pattern=EVENT_TYPE_PATTERN, examples=["anomaly"])
    ] = None,
    severity: Annotated[Severity | None, Query(examples=["high"])] = None,
    min_severity: Annotated[Severity | None, Query(examples=["medium"])] = None,
    since: Annotated[IsoDateTime | None, Query(examples=["2026-11-23T00:00:00Z"])] = None,
    until: Annotated[IsoDateTime | None, Query(examples=["2026-11-24T00:00:00Z"])] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    since, until = _utc(since), _utc(until)
    if since is not None and until is not None and until <= since:
        raise Invalid("until must be later than since", field="until")
    flt = EventFilter(camera_id, type, severity, min_severity, since, until)
    try:
        rows, next_cursor = await EventRepository(session).search(flt, cursor, limit)
    except InvalidCursor:
        raise Invalid("cursor is not valid: pass back a next_cursor unchanged", field="cursor") from None
    # a stored row that cannot be serialised is left out (and logged), never a 500 for the whole page
    return page_response(rows, EventRead, next_cursor, log, "event")


@router.get("/{event_id}", summary="One event", responses=_NOT_FOUND, response_model=EventRead)
async def get_event(event_id: EventId, session: SessionDep, _: ApiKeyDep) -> Response:
    row = await _get(session, event_id)
    done = serialised(row, EventRead, log, "event")
    if done is None:  # logged there; the event stays visible (alerts name it), without its data
        fields = {name: getattr(row, name) for name in EventRead.model_fields}
        body = EventRead.model_validate({**fields, "data": {}}).model_dump_json()
        return Response(body, media_type="application/json")
    return Response(done[1], media_type="application/json")


@router.get(
    "/{event_id}/snapshot.jpg",
    summary="The JPEG kept when the event opened",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "JPEG image"},
        404: {"description": "No such event, or it has no snapshot"},
    },
)
async def get_snapshot(event_id: EventId, session: SessionDep, rt: RuntimeDep, _: ApiKeyDep) -> Response:
    # The live feed announces an event as soon as its snapshot is written, before the logger's flush
    # stores the row: the not-yet-committed version is asked first (then the row, once it is committed).
    pending = rt.event_logger.pending(event_id)
    path = pending.snapshot_path if pending is not None else (await _get(session, event_id)).snapshot_path
    data = await load_snapshot(rt.settings.data_dir, path)
    if data is None:
        raise NotFound("snapshot of event", event_id)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.post(
    "",
    status_code=202,
    summary="Ingest an event from another system",
    description=(
        "For door sensors, access control, scripts. 202 means stored: the answer comes once the event "
        "is committed (requests arriving together share one commit), and only then does it go on to "
        "alert rules and the live feed. 503 means nothing was stored (the database cannot take writes "
        "now): retry later. `camera_id`, when given, must name an existing camera."
    ),
    responses={**_INVALID, **_UNAVAILABLE},
)
async def ingest_event(body: EventIngest, rt: RuntimeDep, _: ApiKeyDep) -> EventAccepted:
    if body.camera_id is not None:
        # a short session of its own: no pooled connection is held while the commit is awaited
        async with rt.sessionmaker() as session:
            exists = await CameraRepository(session).exists(body.camera_id)
        if not exists:
            raise Invalid(f"camera {body.camera_id} does not exist", field="camera_id")
    event = NewEvent(
        camera_id=body.camera_id,
        type=body.type,
        severity=body.severity,
        started_at=body.started_at or utcnow(),
        score=body.score,
        data=body.data,
        source="api",
    )
    await rt.ingest.submit(event)
    return EventAccepted(id=event.id)


async def _get(session: SessionDep, event_id: str) -> Event:
    row = await EventRepository(session).get(event_id)
    if row is None:
        raise NotFound("event", event_id)
    return row
