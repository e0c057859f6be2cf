"""A real Argus server (uvicorn) on a free loopback port, in a thread, for WebSocket and browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

from app.config import Settings
from app.main import create_app
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


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


@contextmanager
def argus_serve(data_dir: Path, log: Path, **env: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The real `argus serve` command (uvicorn's own logging config) on a free loopback port, SQLite in
    `data_dir`, stdout and stderr appended to `log`. Yields (process, base URL) once /api/health answers;
    terminated (killed if it hangs) afterwards. `env`: ARGUS_* settings on top (ARGUS_API_KEYS at least)."""
    port = free_port()
    full_env = {
        **os.environ,
        "ARGUS_DATA_DIR": str(data_dir),
        "ARGUS_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / 'argus.db'}",
        "ARGUS_LOG_LEVEL": "warning",
        **env,
    }
    command = [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("ab") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(proc, url, log.read_text)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
