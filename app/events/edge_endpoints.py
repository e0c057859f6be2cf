"""Where edge sites forward their events: `/ws/ingest` (WebSocket, acknowledged frames) and
`POST /api/events:batch` (the HTTP fallback for networks that block WebSockets, gzip allowed)."""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response, WebSocket
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.websockets import WebSocketDisconnect

from app.auth.deps import websocket_api_key
from app.deps import ApiKeyDep, RuntimeDep
from app.errors import Invalid
from app.events.edge import MAX_BATCH, BatchStored, EdgeName, EventBatch, ForwardedEvent, store_forwarded
from app.events.ingest import IngestUnavailable
from app.runtime import Runtime

log = logging.getLogger("argus.edge")
MAX_INFLATED = 32 * 1024 * 1024  # a gzip body may not unpack to more than this (no decompression bombs)
MAX_FRAME = 4 * 1024 * 1024  # one WebSocket frame of events
HELLO_TIMEOUT_S = 10.0
CLOSE_UNAUTHORIZED = 4401
CLOSE_PROTOCOL = 4400
CLOSE_TRY_LATER = 1013


def inflate(body: bytes, limit: int = MAX_INFLATED) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit)
    except zlib.error:
        raise Invalid("the body is not valid gzip", field="body") from None
    if inflater.unconsumed_tail:
        raise Invalid(f"the body unpacks to more than {limit} bytes", field="body")
    return data


class GzipRoute(APIRoute):
    """Reads a `Content-Encoding: gzip` body unpacked (bounded), before FastAPI parses it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def unpacking(request: Request) -> Response:
            if "gzip" in request.headers.get("content-encoding", "").lower():
                body = inflate(await request.body())
                request = Request(request.scope, request.receive)
                request._body = body
            return await handler(request)

        return unpacking


router = APIRouter(tags=["events"], route_class=GzipRoute)
ws_router = APIRouter()


@router.post(
    "/api/events:batch",
    summary="Store events forwarded by an edge site (HTTP fallback of /ws/ingest)",
    description=(
        f"At most {MAX_BATCH} events, optionally `Content-Encoding: gzip`. Each event is stored once by "
        "its id (sending it again updates it), marked with the edge's name, and alerts like a local one. "
        "200 means committed; 503 means nothing was stored (retry the same batch later)."
    ),
    responses={
        422: {"description": "The body is invalid; `field` names what"},
        503: {"description": "Not stored: the database cannot take writes now; retry later"},
    },
)
async def store_batch(body: EventBatch, rt: RuntimeDep, _: ApiKeyDep) -> BatchStored:
    return await store_forwarded(rt.sessionmaker, rt.ingest, rt.settings.data_dir, body.edge, body.events)


class _Hello(BaseModel):
    type: str
    edge: EdgeName


class _Frame(BaseModel):
    type: str
    frame: int
    events: list[ForwardedEvent]


@ws_router.websocket("/ws/ingest")
async def ingest(ws: WebSocket, rt: RuntimeDep) -> None:
    """An edge's persistent connection: `hello`, then frames of events, each acknowledged once stored."""
    key = await websocket_api_key(ws)
    await ws.accept()
    if key is None:
        await ws.close(code=CLOSE_UNAUTHORIZED, reason="missing or invalid API key")
        return
    try:
        hello = _Hello.model_validate_json(await asyncio.wait_for(ws.receive_text(), HELLO_TIMEOUT_S))
        if hello.type != "hello":
            raise ValueError("the first message must be a hello")
    except (TimeoutError, ValueError, ValidationError) as exc:
        await ws.close(
            code=CLOSE_PROTOCOL, reason=_short(f"expected {{'type': 'hello', 'edge': name}}: {exc}")
        )
        return
    except WebSocketDisconnect:
        return
    log.info("edge %s connected", hello.edge)
    await ws.send_json({"type": "welcome"})
    try:
        while True:
            text = await ws.receive_text()
            if len(text) > MAX_FRAME:
                await ws.close(code=CLOSE_PROTOCOL, reason=f"a frame may hold at most {MAX_FRAME} bytes")
                return
            reply = await _store_frame(rt, hello.edge, text)
            if reply is None:
                await ws.close(code=CLOSE_TRY_LATER, reason="the database cannot take writes now")
                return
            await ws.send_json(reply)
    except WebSocketDisconnect:
        log.info("edge %s disconnected", hello.edge)


async def _store_frame(rt: Runtime, edge: str, text: str) -> dict[str, Any] | None:
    """The reply to one frame: an ack once stored, a nack for a frame that can never be stored, None
    when nothing can be stored now (the edge reconnects later and sends it again)."""
    try:
        frame = _Frame.model_validate_json(text)
    except ValidationError as exc:
        frame_id = _frame_id(text)
        return {"type": "nack", "frame": frame_id, "error": _short(str(exc))}
    if len(frame.events) > MAX_BATCH:
        return {"type": "nack", "frame": frame.frame, "error": f"at most {MAX_BATCH} events a frame"}
    try:
        stored = await store_forwarded(rt.sessionmaker, rt.ingest, rt.settings.data_dir, edge, frame.events)
    except IngestUnavailable:
        return None
    return {"type": "ack", "frame": frame.frame, **stored.model_dump()}


def _frame_id(text: str) -> int | None:
    try:
        value = json.loads(text).get("frame")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
