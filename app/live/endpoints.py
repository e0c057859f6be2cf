"""/ws/live: auth, then one reader and one writer task per client. (The page itself: app/dashboard.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from app.auth.deps import auth_throttle, client_address, key_is_valid, websocket_api_key
from app.cameras.repository import CameraRepository
from app.deps import RuntimeDep
from app.kit.tasks import cancel_and_wait, spawn
from app.live.hub import Client, Closed, LiveHub
from app.live.protocol import Ping, ProtocolError, Subscribe, Unsubscribe, parse_client_message
from app.runtime import Runtime

log = logging.getLogger("argus.live")
router = APIRouter()
MAX_TEXT = 16_384  # client messages are tiny; anything bigger is a mistake or abuse
# A client sends a few subscribes and pings; each subscribe may cost a camera lookup in the database.
MAX_MESSAGES_PER_S = 20
_RATE_LIMITED = f"at most {MAX_MESSAGES_PER_S} messages a second; the rest of this second's were ignored"
KEEPALIVE_S = 15.0  # an idle connection gets {"type":"keepalive"} this often (proxies drop silent sockets)
CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_SLOW = 4408
CLOSE_THROTTLED = 4429
# The browser cannot set headers on a WebSocket, and a `?token=` lands in every access log. So the page
# offers two subprotocols: SUBPROTOCOL (echoed back) and KEY_SUBPROTOCOL + key (read, never echoed).
SUBPROTOCOL = "argus.live"
KEY_SUBPROTOCOL = "argus.key."


@router.websocket("/ws/live")
async def live(ws: WebSocket, runtime: RuntimeDep) -> None:
    """Live frames, detections, events and camera states for the cameras a client subscribes to."""
    key = await _authenticate(ws)
    offered = ws.scope.get("subprotocols") or []
    await ws.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
    if key is None:
        if auth_throttle(ws).blocked_for(client_address(ws)):
            await ws.close(code=CLOSE_THROTTLED, reason="too many bad API keys from this address")
        else:
            await ws.close(code=CLOSE_UNAUTHORIZED, reason="missing or invalid API key")
        return
    hub = runtime.hub
    client = hub.connect()
    stall_s = runtime.settings.live_stall_timeout_s
    reader = spawn(_read(ws, hub, client, runtime), name=f"argus.live.reader:{client.id}")
    writer = spawn(_write(ws, client, stall_s), name=f"argus.live.writer:{client.id}")
    try:
        done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.disconnect(client)
        await cancel_and_wait(reader, 1.0)
        await cancel_and_wait(writer, 1.0)
    if writer in done and writer.result() == CLOSE_TOO_SLOW:
        log.info("live client %s reaped: stalled more than %.0f s", client.id, stall_s)
        await _close(ws, CLOSE_TOO_SLOW, "client too slow")
    else:
        await _close(ws, 1000, "")


async def _authenticate(ws: WebSocket) -> str | None:
    """`Authorization: Bearer`, `?token=` (scripts, kept for compatibility) or the key subprotocol."""
    key = await websocket_api_key(ws)
    if key is not None:
        return key
    # the first key subprotocol only: a handshake offering hundreds is not hundreds of key lookups
    for proto in ws.scope.get("subprotocols") or []:
        if proto.startswith(KEY_SUBPROTOCOL):
            candidate = proto.removeprefix(KEY_SUBPROTOCOL)
            return candidate if await key_is_valid(ws, candidate) else None
    return None


async def _read(ws: WebSocket, hub: LiveHub, client: Client, runtime: Runtime) -> None:
    window_start, count = time.monotonic(), 0
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        now = time.monotonic()
        if now - window_start >= 1.0:
            window_start, count = now, 0
        count += 1
        if count > MAX_MESSAGES_PER_S:  # ignored, said once per second
            if count == MAX_MESSAGES_PER_S + 1:
                client.put_json(ProtocolError("rate_limited", _RATE_LIMITED).to_json())
            continue
        text = message.get("text")
        if text is None:
            client.put_json(ProtocolError("binary_not_accepted", "send JSON text messages").to_json())
            continue
        if len(text) > MAX_TEXT:
            client.put_json(ProtocolError("too_large", f"messages are limited to {MAX_TEXT} bytes").to_json())
            continue
        try:
            await _handle(parse_client_message(text), hub, client, runtime)
        except ProtocolError as exc:
            client.put_json(exc.to_json())


async def _handle(
    msg: Subscribe | Unsubscribe | Ping, hub: LiveHub, client: Client, runtime: Runtime
) -> None:
    if isinstance(msg, Ping):
        client.put_json({"type": "pong", "ts": time.time()})
        return
    ids = list(dict.fromkeys(msg.camera_ids))  # dedupe, keep order
    if isinstance(msg, Unsubscribe):
        hub.unsubscribe(client, ids)
        client.put_json({"type": "unsubscribed", "camera_ids": ids, "watching": sorted(client.subs)})
        return
    known = {i for i in ids if hub.knows(i)}
    if unasked := set(ids) - known:
        async with runtime.sessionmaker() as session:
            known |= await CameraRepository(session).existing_ids(unasked)
    unknown = [i for i in ids if i not in known]
    ok = [i for i in ids if i in known]
    if ok:
        watching = sorted(set(client.subs) | set(ok))
        reply = {"type": "subscribed", "camera_ids": ok, "fps": hub.fps_for(msg.fps), "watching": watching}
        client.put_json(reply)  # before the replayed states the subscription triggers
        hub.subscribe(client, ok, msg.fps)
    if unknown:
        raise ProtocolError(
            "unknown_camera",
            f"no camera with id {', '.join(map(str, unknown))}",
            field="camera_ids",
            camera_ids=unknown,
        )


async def _write(ws: WebSocket, client: Client, stall_s: float) -> int:
    """Send the outbox in order; a send that blocks longer than `stall_s` reaps the client."""
    while True:
        message = await client.next_message(KEEPALIVE_S)
        if isinstance(message, Closed):
            return 1001
        if message is None:
            message = '{"type":"keepalive"}'
        try:
            async with asyncio.timeout(stall_s):  # a timer, not a task per message like wait_for
                if isinstance(message, bytes):
                    await ws.send_bytes(message)
                else:
                    await ws.send_text(message)
        except TimeoutError:
            return CLOSE_TOO_SLOW
        except (WebSocketDisconnect, RuntimeError, OSError):
            return 1006
        client.sent(message)


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    if ws.application_state != WebSocketState.CONNECTED:
        return
    # The peer may be gone or stuck: then the server drops the connection once we return.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(code=code, reason=reason), 2.0)
