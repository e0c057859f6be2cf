"""Limits `argus serve` sets on the server itself (not visible to in-process tests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.__main__ import WS_MAX_BYTES
from app.live.endpoints import KEY_SUBPROTOCOL, SUBPROTOCOL
from tests.conftest import API_KEY
from tests.support.server import argus_serve


async def test_an_oversized_websocket_message_is_refused_by_the_protocol(tmp_path: Path) -> None:
    """uvicorn's default buffers 16 MiB per message before the app can say no; `argus serve` stops at
    WS_MAX_BYTES with close 1009 (message too big). Small messages still work on a fresh connection."""
    with argus_serve(tmp_path / "data", tmp_path / "argus.log", ARGUS_API_KEYS=API_KEY) as (_, base):
        url = base.replace("http://", "ws://") + "/ws/live"
        protocols = [SUBPROTOCOL, KEY_SUBPROTOCOL + API_KEY]
        async with connect(url, subprotocols=protocols, max_size=None) as ws:  # type: ignore[arg-type]
            await ws.send('{"type": "ping", "pad": "' + "x" * (WS_MAX_BYTES + 1) + '"}')
            with pytest.raises(ConnectionClosed):
                for _ in range(10):
                    await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 1009
        async with connect(url, subprotocols=protocols) as ws:  # type: ignore[arg-type]
            await ws.send('{"type": "ping"}')
            assert "pong" in await asyncio.wait_for(ws.recv(), 10)
