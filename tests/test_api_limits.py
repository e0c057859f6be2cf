"""The API edge under hostile or careless clients (issue 9, items 2 and 9): request bodies are capped
(413) before anything parses them, a body without a valid key is refused (401) before it is read, and
error bodies never echo large or secret input."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.conftest import API_KEY, AUTH, make_settings
from tests.support.server import running_server

LIMIT = 64 * 1024
SECRET = "S3cretPW"


@pytest.fixture
def small_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data", max_body_bytes=LIMIT)


@pytest.fixture
async def client(small_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(small_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://argus", headers=AUTH) as c:
            yield c


@pytest.fixture
def server(small_settings: Settings) -> Iterator[str]:
    with running_server(small_settings) as url:
        yield url


def half_sent(url: str, path: str, length: int, headers: dict[str, str]) -> bytes:
    """Declare `length` bytes of body, send only 1 KB of it and read the answer: it can only come back if
    the server decided without reading the body."""
    host, port = url.removeprefix("http://").split(":")
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Content-Length: {length}",
    ]
    head += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + b'{"type": "' + b"x" * 1024)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def test_default_cap_is_one_mebibyte() -> None:
    assert Settings(_env_file=None).max_body_bytes == 1_048_576  # type: ignore[call-arg]


class TestBodyCap:
    async def test_declared_length_over_the_cap_is_413(self, client: httpx.AsyncClient) -> None:
        r = await client.post("/api/events", json={"type": "x", "data": {"blob": "y" * LIMIT}})
        assert r.status_code == 413
        assert r.json() == {"detail": f"request body is larger than {LIMIT} bytes (ARGUS_MAX_BODY_BYTES)"}

    async def test_a_streamed_body_is_stopped_at_the_cap(self, client: httpx.AsyncClient) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"type": "x", "data": {"blob": "'
            for _ in range(LIMIT // 1024 + 8):
                yield b"y" * 1024
            yield b'"}}'

        r = await client.post("/api/events", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413, r.text
        assert "ARGUS_MAX_BODY_BYTES" in r.json()["detail"]

    async def test_bodies_under_the_cap_pass(self, client: httpx.AsyncClient) -> None:
        r = await client.post("/api/events", json={"type": "x", "data": {"blob": "y" * 1000}})
        assert r.status_code == 202, r.text

    def test_a_29_mb_body_is_refused_unread(self, server: str) -> None:
        answer = half_sent(server, "/api/events", 29_000_000, {"Authorization": f"Bearer {API_KEY}"})
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert httpx.get(f"{server}/api/health").status_code == 200


class TestAuthBeforeBody:
    @pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key"}])
    def test_no_valid_key_is_401_before_the_body_is_read(self, server: str, headers: dict[str, str]) -> None:
        answer = half_sent(server, "/api/events", 50_000, headers)  # under the cap: only the key decides
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert b"www-authenticate: Bearer" in answer.lower().replace(b"bearer", b"Bearer")

    async def test_unknown_paths_and_public_routes_still_answer(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/api/health", headers={"Authorization": ""})).status_code == 200
        r = await client.post("/api/events", json={"type": "x"}, headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401


class TestNoEcho:
    async def test_camera_without_name_does_not_echo_its_password(self, client: httpx.AsyncClient) -> None:
        r = await client.post("/api/cameras", json={"url": f"rtsp://admin:{SECRET}@10.0.0.5:554/stream1"})
        assert r.status_code == 422
        assert SECRET not in r.text
        assert "rtsp://admin:****@10.0.0.5:554/stream1" in r.text  # still says what it got, masked

    @pytest.mark.parametrize(
        "url",
        [
            f"ftp://admin:{SECRET}@10.0.0.5/x",
            f"rtsp://10.0.0.5/x?password={SECRET}&a\x00",
            f"rtsp://{SECRET}@h/x y",
        ],
    )
    async def test_a_bad_camera_url_is_not_echoed(self, client: httpx.AsyncClient, url: str) -> None:
        r = await client.post("/api/cameras", json={"name": "c", "url": url})
        assert r.status_code == 422, r.text
        assert SECRET not in r.text

    async def test_bad_webhook_secret_and_url_are_not_echoed(self, client: httpx.AsyncClient) -> None:
        body = {"name": "h", "url": "http://127.0.0.1:9/x", "secret": SECRET[:5]}
        r = await client.post("/api/webhooks", json=body)
        assert r.status_code == 422 and SECRET[:5] not in r.text, r.text
        body = {"name": "h", "url": f"gopher://u:{SECRET}@h/", "secret": "long-enough-secret"}
        r = await client.post("/api/webhooks", json=body)
        assert r.status_code == 422 and SECRET not in r.text, r.text
        r = await client.post("/api/webhooks", json={"url": "http://127.0.0.1:9/x", "secret": SECRET * 2})
        assert r.status_code == 422 and SECRET not in r.text, r.text  # the whole body as input of `name`

    async def test_large_inputs_come_back_cut(self, client: httpx.AsyncClient) -> None:
        r = await client.post("/api/events", json={"type": "x" * 60_000})
        assert r.status_code == 422
        assert len(r.content) < 2_000
        r = await client.post("/api/cameras", json={"url": "rtsp://h/x", "vad": [1] * 10_000})
        assert r.status_code == 422 and len(r.content) < 4_000

    async def test_error_messages_and_query_strings_are_bounded(self, client: httpx.AsyncClient) -> None:
        r = await client.get("/api/models/" + "n" * 20_000)  # its name is quoted in the 404 message
        assert r.status_code == 404 and len(r.content) < 1_500, len(r.content)
        r = await client.get("/api/alerts", params={"cursor": "a" * 5_000})
        assert r.status_code == 422 and len(r.content) < 1_500, r.text


@pytest.mark.parametrize("name", ["lobby\r\nWARNING forged line", "tab\there", "x\u2028y", "del\x7f"])
async def test_names_refuse_control_characters(client: httpx.AsyncClient, name: str) -> None:
    camera = {"name": name, "url": "rtsp://127.0.0.1:9/x", "enabled": False}
    r = await client.post("/api/cameras", json=camera)
    assert r.status_code == 422 and "control characters" in r.text, r.text
    webhook = {"name": name, "url": "http://127.0.0.1:9/x", "secret": "s" * 8}
    r = await client.post("/api/webhooks", json=webhook)
    assert r.status_code == 422, r.text
