"""/ws/live bounds what one client can make the server do: at most MAX_MESSAGES_PER_S messages a
second are handled (each subscribe may cost a database lookup), the rest ignored with one error."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import connect

from app.live.endpoints import KEY_SUBPROTOCOL, MAX_MESSAGES_PER_S, SUBPROTOCOL
from tests.conftest import API_KEY


async def replies(ws: Any, quiet_s: float = 0.5) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while True:
        try:
            message = await asyncio.wait_for(ws.recv(), quiet_s)
        except TimeoutError:
            return got
        if isinstance(message, str) and json.loads(message)["type"] != "keepalive":
            got.append(json.loads(message))


async def test_a_message_flood_is_cut_at_the_rate_limit(server_url: str) -> None:
    url = server_url.replace("http://", "ws://") + "/ws/live"
    async with connect(url, subprotocols=[SUBPROTOCOL, KEY_SUBPROTOCOL + API_KEY]) as ws:  # type: ignore[list-item]
        for _ in range(MAX_MESSAGES_PER_S * 3):
            await ws.send('{"type": "ping"}')
        got = await replies(ws)
        kinds = [m["type"] for m in got]
        assert kinds.count("pong") == MAX_MESSAGES_PER_S, kinds
        errors = [m for m in got if m["type"] == "error"]
        assert [e["code"] for e in errors] == ["rate_limited"]
        await asyncio.sleep(1.0)
        await ws.send('{"type": "ping"}')
        assert [m["type"] for m in await replies(ws)] == ["pong"]  # the next second is served again
