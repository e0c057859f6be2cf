"""Secrets never reach the log: URL passwords, `?token=`-style query values, Bearer tokens."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import connect

from app.kit.redact import install_log_redaction, mask_text, mask_url
from app.main import create_app
from tests.conftest import API_KEY, make_settings
from tests.support.server import free_port
from tests.support.waiting import wait_until


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ('"WebSocket /ws/live?token=argus_Ab-_9" [accepted]', '"WebSocket /ws/live?token=****" [accepted]'),
        ("GET /x?a=1&api_key=zz&key=k2#f HTTP/1.1", "GET /x?a=1&api_key=****&key=**** HTTP/1.1"),
        ("open rtsp://admin:pa#ss@h/x failed", "open rtsp://admin:****@h/x failed"),  # unencoded # in it
        ("open rtsp://admin:p/w@h:554/x: refused", "open rtsp://admin:****@h:554/x: refused"),
        ('{"url": "https://ghp_0123456789abcdefghijklmnopqrstuvwxyz@h/x"}', '{"url": "https://****@h/x"}'),
        (
            "GET /s?PWD=a&pass=b&Signature=c&sig=d&X-Auth-Token=e&page=2",
            "GET /s?PWD=****&pass=****&Signature=****&sig=****&X-Auth-Token=****&page=2",
        ),
        ("Authorization: Bearer abc.def", "Authorization: Bearer ****"),
        ("rtsp://u:pw@h/s?Token=1", "rtsp://u:****@h/s?Token=****"),
        ("dedup key=camera:1 token bucket", "dedup key=camera:1 token bucket"),  # prose is left alone
    ],
)
def test_mask_text(text: str, masked: str) -> None:
    assert mask_text(text) == masked


def test_mask_url_is_unchanged_for_responses() -> None:
    assert mask_url("rtsp://admin:secret@10.0.0.5/stream1") == "rtsp://admin:****@10.0.0.5/stream1"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("rtsp://h/s?password=S3cret&channel=1", "rtsp://h/s?password=****&channel=1"),
        ("rtsp://h/s?pwd=S3cret", "rtsp://h/s?pwd=****"),
        ("rtsp://h/s?user=a&token=S3cret", "rtsp://h/s?user=a&token=****"),
        ("rtsp://h/s?Password=S3#cret&x=1", "rtsp://h/s?Password=****&x=1"),
        ("https://S3cretTokenAsTheUserNameOnly@h/x", "https://****@h/x"),
        ("https://a-very-long-token-used-as-the-user-name-0123:x-oauth-basic@h/", "https://****@h/"),
        ("rtsp://admin:S3#cret@h/x", "rtsp://admin:****@h/x"),
        ("rtsp://admin:S3/cret@h:554/x", "rtsp://admin:****@h:554/x"),
        ("rtsp://admin:S3@cret@h/x", "rtsp://admin:****@h/x"),
        ("rtsp://h/a\r\nX-Forged: yes", "rtsp://h/a%0D%0AX-Forged: yes"),
        ("/srv/media/clip.mp4", "/srv/media/clip.mp4"),
    ],
)
def test_mask_url_hides_every_credential_form(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert "S3" not in mask_text(f"opening {url} failed")


def test_log_records_are_masked_whatever_logs_them(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    log = logging.getLogger("tests.redact")
    with caplog.at_level(logging.INFO, logger="tests.redact"):
        log.info('%s - "WebSocket %s" [accepted]', "127.0.0.1:5000", f"/ws/live?token={API_KEY}")
        log.info("header %s", {"authorization": f"Bearer {API_KEY}"})
        try:
            raise RuntimeError(f"GET http://h/x?api_key={API_KEY} failed")
        except RuntimeError:
            log.exception("request failed")
    assert API_KEY not in caplog.text
    assert "token=****" in caplog.text and "api_key=****" in caplog.text and "Bearer ****" in caplog.text


@pytest.fixture
def info_server(tmp_path: Path) -> Iterator[str]:
    """A real uvicorn server logging at INFO, as `argus serve` does (its request lines carry queries)."""
    port = free_port()
    app = create_app(make_settings(tmp_path / "data", log_level="info", port=port))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info", log_config=None)
    )
    thread = threading.Thread(target=server.run, name="argus.test-info-server", daemon=True)
    thread.start()

    def started() -> bool:
        assert thread.is_alive(), "server exited while starting"
        return bool(server.started)

    wait_until(started, 30, what="server start")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


async def test_uvicorn_request_lines_never_hold_the_key(
    info_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with connect(f"ws://{info_server}/ws/live?token={API_KEY}") as ws:
        await ws.send('{"type": "ping"}')
        assert "pong" in await ws.recv()
    async with httpx.AsyncClient() as http:
        r = await http.get(
            f"http://{info_server}/api/cameras?api_key={API_KEY}",
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
        assert r.status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("uvicorn")]
    assert any("/ws/live?token=****" in line for line in lines), lines  # the line is there, masked
    assert any("/api/cameras?api_key=****" in line for line in lines), lines
    assert API_KEY not in caplog.text
