"""GET /api/events/{id}/clip.mp4: an event's video with HTTP Range, including a clip still being written."""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import anyio
from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, StreamingResponse

from app.deps import ApiKeyDep, RuntimeDep, SessionDep
from app.errors import NotFound
from app.events.repository import EventRepository
from app.recording.clip_store import part_of, resolve

router = APIRouter(prefix="/api/events", tags=["events"])
EventId = Annotated[str, PathParam(max_length=64, pattern=r"^[\w-]+$")]
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 256 * 1024
RETRY_AFTER_S = 2  # a part's first fragment is written after one GOP (a few seconds at most)

_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"video/mp4": {}}, "description": "The whole clip part (fragmented MP4)"},
    206: {"content": {"video/mp4": {}}, "description": "The requested byte range (`Content-Range`)"},
    404: {"description": "No such event, it has no clip (yet), or no such part"},
    416: {"description": "The range is malformed or starts past the end (`Content-Range: bytes */size`)"},
    425: {
        "description": "The part is being written and has no complete fragment yet: retry after "
        "`retry_after` seconds (also in `Retry-After`)",
        "content": {"application/json": {"example": {"detail": "clip not ready", "retry_after": 2}}},
    },
}


class RangeNotSatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive for one `bytes=` range; None for the whole file (no header, another
    unit, or several ranges, which RFC 9110 lets a server ignore). Raises RangeNotSatisfiable."""
    if not header or not header.strip().lower().startswith("bytes="):
        return None
    spec = header.strip()
    if "," in spec:
        return None
    match = _RANGE.match(spec.replace(" ", "").lower())
    if match is None or match[1] == match[2] == "":
        raise RangeNotSatisfiable(header)
    if match[1] == "":  # the last N bytes
        suffix = int(match[2])
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return max(size - suffix, 0), size - 1
    first = int(match[1])
    last = int(match[2]) if match[2] else size - 1
    if first >= size or last < first:
        raise RangeNotSatisfiable(header)
    return first, min(last, size - 1)


async def _read(path: Path, first: int, last: int) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as f:
        await f.seek(first)
        left = last - first + 1
        while left > 0:
            chunk = await f.read(min(_CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


@router.get(
    "/{event_id}/clip.mp4",
    summary="The event's video clip (MP4, HTTP Range)",
    description=(
        "From the keyframe at least the camera's `pre_roll_s` before the event to `post_roll_s` after it "
        "ended, remuxed from the camera's stream (no re-encode), as fragmented MP4 that browsers play at "
        "once. Single byte ranges get 206 (`Accept-Ranges: bytes`). While the event is still open the "
        "clip grows: each response covers what is written so far, up to its last complete fragment "
        "(`Cache-Control: no-store`); the first fragment exists once `clip_url` appears on the event. "
        "A clip longer than ARGUS_CLIP_MAX_S continues in parts: `?part=2`, ... (the event's `clip_urls`)."
    ),
    response_class=Response,
    responses=_RESPONSES,
)
async def get_clip(
    event_id: EventId,
    request: Request,
    session: SessionDep,
    rt: RuntimeDep,
    _: ApiKeyDep,
    part: Annotated[int, Query(ge=1, le=10_000, description="Part number (1: the first)")] = 1,
) -> Response:
    row = await EventRepository(session).get(event_id)
    if row is None:
        raise NotFound("event", event_id)
    if not row.clip_path or part > max(row.clip_parts or 1, 1):
        raise NotFound("clip of event", event_id)
    path = resolve(rt.settings.data_dir, part_of(row.clip_path, part))
    growing = rt.clips.readable(event_id, part)
    try:
        size = growing if growing is not None else (await anyio.Path(path).stat()).st_size if path else -1
    except FileNotFoundError:
        size = -1
    if path is None or size < 0:
        raise NotFound("clip of event", event_id)
    if size == 0:
        return JSONResponse(
            {"detail": "clip not ready: its first fragment is being written", "retry_after": RETRY_AFTER_S},
            status_code=425,
            headers={"Retry-After": str(math.ceil(RETRY_AFTER_S))},
        )
    return _ranged(request, path, size, growing is not None)


# HEAD answers the same headers without the body (players probe sizes); one documented operation is enough
router.add_api_route("/{event_id}/clip.mp4", get_clip, methods=["HEAD"], include_in_schema=False)


def _ranged(request: Request, path: Path, size: int, growing: bool) -> Response:
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "no-store" if growing else "private, max-age=3600",
    }
    try:
        span = parse_range(request.headers.get("range"), size)
    except RangeNotSatisfiable:
        headers["Content-Range"] = f"bytes */{size}"
        return JSONResponse({"detail": "range not satisfiable"}, status_code=416, headers=headers)
    first, last = span if span is not None else (0, size - 1)
    headers["Content-Length"] = str(last - first + 1)
    status = 200
    if span is not None:
        status = 206
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type="video/mp4")
    return StreamingResponse(
        _read(path, first, last), status_code=status, headers=headers, media_type="video/mp4"
    )
