"""A real Argus server (uvicorn) on a free loopback port, in a thread, for WebSocket and browser tests."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from app.config import Settings
from app.main import create_app
from tests.support.waiting import wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(settings: Settings, timeout: float = 30.0) -> Iterator[str]:
    """Yields the base URL `http://127.0.0.1:PORT`; the server stops (lifespan exit) afterwards."""
    port = free_port()
    app = create_app(settings.model_copy(update={"port": port}))
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws_ping_interval=5,
        ws_per_message_deflate=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="argus.test-server", daemon=True)
    thread.start()

    def started() -> bool:
        assert thread.is_alive(), "test server exited while starting"
        return bool(server.started)

    wait_until(started, timeout, what="test server start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)


def wait_until_healthy(
    proc: subprocess.Popen,
    url: str,
    output: Callable[[], str],
    timeout: float = 60.0,  # type: ignore[type-arg]
) -> None:
    """Block until an `argus serve` subprocess answers /api/health; fail with its output if it exits."""

    def healthy() -> bool:
        assert proc.poll() is None, f"argus serve exited: {output()[-2000:]}"
        return httpx.get(f"{url}/api/health", timeout=2).status_code == 200

    wait_until(healthy, timeout, interval=0.1, what="argus serve start", ignore=(httpx.HTTPError,))
