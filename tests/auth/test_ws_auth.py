"""/ws/live takes the key as a subprotocol (what the dashboard sends: no key in any logged URL)."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.live.endpoints import KEY_SUBPROTOCOL, SUBPROTOCOL
from tests.conftest import API_KEY


def ws_url(server_url: str) -> str:
    return server_url.replace("http://", "ws://") + "/ws/live"


async def test_key_subprotocol_is_accepted_and_never_echoed(server_url: str) -> None:
    async with connect(ws_url(server_url), subprotocols=[SUBPROTOCOL, KEY_SUBPROTOCOL + API_KEY]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == SUBPROTOCOL
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "pong"


async def test_wrong_key_subprotocol_closes_4401(server_url: str) -> None:
    async with connect(ws_url(server_url), subprotocols=[SUBPROTOCOL, KEY_SUBPROTOCOL + "wrong"]) as ws:  # type: ignore[list-item]
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 4401
