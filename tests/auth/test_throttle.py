"""Failed-auth throttling: more than 20 bad keys a second from one address get 429 for a while (one log
line per block); valid keys from the same address are never slowed (issue 9, guard)."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.auth.throttle import FailedAuthThrottle
from app.live.endpoints import CLOSE_THROTTLED, KEY_SUBPROTOCOL, SUBPROTOCOL
from tests.conftest import API_KEY, AUTH

BAD = {"Authorization": "Bearer not-a-key"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestFailedAuthThrottle:
    def test_more_than_the_limit_within_the_window_blocks_for_a_while(self) -> None:
        clock = Clock()
        t = FailedAuthThrottle(limit=20, window_s=1.0, block_s=60.0, clock=clock)
        assert all(t.failed("10.0.0.1") == 0 for _ in range(20))
        assert t.failed("10.0.0.1") == 60.0  # the 21st within the second
        assert t.failed("10.0.0.2") == 0  # per address
        clock.now += 59
        assert t.blocked_for("10.0.0.1") == pytest.approx(1.0)
        clock.now += 1
        assert t.blocked_for("10.0.0.1") == 0 and t.failed("10.0.0.1") == 0

    def test_a_slow_trickle_is_never_blocked(self) -> None:
        clock = Clock()
        t = FailedAuthThrottle(limit=20, window_s=1.0, clock=clock)
        for _ in range(200):
            assert t.failed("10.0.0.1") == 0
            clock.now += 0.06  # ~17 a second
        assert t.blocks == 0

    def test_memory_is_bounded(self) -> None:
        clock = Clock()
        t = FailedAuthThrottle(limit=1, max_addresses=100, clock=clock)
        t.failed("blocked")
        t.failed("blocked")
        for i in range(1000):
            t.failed(f"10.0.{i // 256}.{i % 256}")
            clock.now += 0.01
        assert len(t._addresses) <= 100


async def test_bad_keys_get_429_valid_keys_pass(
    app_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="argus.auth"):
        codes = [(await app_client.get("/api/cameras", headers=BAD)).status_code for _ in range(30)]
        assert codes[:20] == [401] * 20 and set(codes[20:]) == {429}
        r = await app_client.get("/api/events", headers=BAD)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
        assert "bad API key" in r.json()["detail"]
        # a body with a bad key is refused 429 at the gate, before it is read
        assert (await app_client.post("/api/events", json={"type": "x"}, headers=BAD)).status_code == 429
        # the valid key from the same address is not slowed, nor a request without any key treated as a guess
        for _ in range(5):
            assert (await app_client.get("/api/cameras", headers=AUTH)).status_code == 200
        assert (await app_client.post("/api/events", json={"type": "x"}, headers=AUTH)).status_code == 202
        assert (await app_client.get("/api/cameras", headers={"Authorization": ""})).status_code == 401
    blocks = [r for r in caplog.records if "bad API keys" in r.getMessage()]
    assert len(blocks) == 1, [r.getMessage() for r in blocks]  # once per block, not per request
    assert "127.0.0.1" in blocks[0].getMessage()


async def test_websocket_guesses_count_and_are_closed_4429(server_url: str) -> None:
    url = server_url.replace("http://", "ws://") + "/ws/live"
    for _ in range(21):
        async with connect(f"{url}?token=guess") as ws:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == CLOSE_THROTTLED
    async with connect(url, subprotocols=[SUBPROTOCOL, KEY_SUBPROTOCOL + API_KEY]) as ws:  # type: ignore[list-item]
        await ws.send('{"type": "ping"}')
        assert "pong" in await asyncio.wait_for(ws.recv(), 5)


async def test_only_the_first_key_subprotocol_is_tried(server_url: str) -> None:
    """A handshake offering many key subprotocols costs one lookup and counts one guess, not one each
    (25 counted guesses would have blocked the address at once: 4429 instead of 4401)."""
    url = server_url.replace("http://", "ws://") + "/ws/live"
    offered = [SUBPROTOCOL] + [f"{KEY_SUBPROTOCOL}bad{i}" for i in range(25)]
    async with connect(url, subprotocols=offered) as ws:  # type: ignore[arg-type]
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 4401
