"""GET /api/events/stream: events as Server-Sent Events, filtered like /api/events, resumable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent

from app.deps import ApiKeyDep, RuntimeDep
from app.errors import Invalid
from app.events.repository import EventFilter
from app.events.schemas import EVENT_TYPE_PATTERN
from app.events.stream import InvalidPosition, Position, live_message, matches, replay
from app.kit.schemas import DbId
from app.kit.severity import Severity

# Included before the events router: `/api/events/{event_id}` would otherwise take "stream" as an id.
router = APIRouter(prefix="/api/events", tags=["events"])
RETRY_MS = 3000  # how long a browser's EventSource waits before reconnecting


def resume_position(
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID", max_length=100, description="Resume after this id (sent by SSE clients)"
        ),
    ] = None,
    last_event_id_query: Annotated[
        str | None,
        Query(alias="last_event_id", max_length=100, description="The same as the Last-Event-ID header"),
    ] = None,
) -> Position | None:
    text = last_event_id or last_event_id_query
    if not text:
        return None
    try:
        return Position.parse(text)
    except InvalidPosition as exc:
        raise Invalid(f"Last-Event-ID is {exc}", field="Last-Event-ID") from None


def sse(message: tuple[str, str, dict[str, Any]]) -> ServerSentEvent:
    name, position, body = message
    return ServerSentEvent(event=name, id=position, data=body)


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    summary="Events as they happen (Server-Sent Events), resumable",
    description=(
        "A `text/event-stream` of `new`, `update` and `end` messages, each with an `id` and the event as "
        "JSON `data` (the fields of `GET /api/events/{id}`). Filters as `/api/events`. A client that "
        "reconnects with `Last-Event-ID` (or `?last_event_id=`) first gets every event stored or changed "
        "since that id from the database (as it is now), then the live stream: nothing is missed, a few "
        "may come twice. A comment line every ARGUS_EVENT_STREAM_HEARTBEAT_S (15 s) keeps proxies from "
        "closing an idle stream. A client that reads too slowly gets an `overflow` message and is "
        "disconnected; it resumes with its last id."
    ),
    responses={422: {"description": "A filter or Last-Event-ID is invalid; `field` names it"}},
)
async def stream_events(
    rt: RuntimeDep,
    _: ApiKeyDep,
    resume: Annotated[Position | None, Depends(resume_position)],
    camera_id: Annotated[DbId | None, Query(examples=[1])] = None,
    type: Annotated[
        str | None, Query(max_length=64, pattern=EVENT_TYPE_PATTERN, examples=["anomaly"])
    ] = None,
    severity: Annotated[Severity | None, Query(examples=["high"])] = None,
    min_severity: Annotated[Severity | None, Query(examples=["medium"])] = None,
) -> AsyncIterator[ServerSentEvent]:
    flt = EventFilter(camera_id, type, severity, min_severity)
    heartbeat_s = rt.settings.event_stream_heartbeat_s
    with rt.event_stream.client() as client:  # subscribed before the replay: nothing falls in between
        yield ServerSentEvent(comment="argus event stream", retry=RETRY_MS)
        if resume is not None:
            async for message in replay(rt.sessionmaker, flt, resume):
                yield sse(message)
        while True:
            if client.overflowed.is_set() and client.queue.empty():
                detail = "this client fell behind: reconnect with Last-Event-ID to resume"
                yield ServerSentEvent(event="overflow", data={"detail": detail})
                return
            try:
                event = await asyncio.wait_for(client.queue.get(), heartbeat_s)
            except TimeoutError:
                yield ServerSentEvent(comment="heartbeat")
                continue
            if matches(flt, event):
                yield sse(live_message(event))
