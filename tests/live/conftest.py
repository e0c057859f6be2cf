"""A real Argus server whose runtime the test can reach, and frame producers that feed its live hub."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI

from app.config import Settings
from app.live.hub import LiveHub
from app.main import create_app
from app.models import Camera
from app.stream.frame import Frame
from tests.conftest import API_KEY, AUTH, make_settings
from tests.support.server import free_port
from tests.support.viewer import write_video
from tests.support.waiting import eventually, wait_until

T = TypeVar("T")


@dataclass
class LiveServer:
    url: str
    app: FastAPI
    loop: asyncio.AbstractEventLoop

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws/live"

    def ws_auth_url(self, key: str = API_KEY) -> str:
        return f"{self.ws_url}?token={key}"

    @property
    def hub(self) -> LiveHub:
        hub: LiveHub = self.app.state.runtime.hub
        return hub

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run a coroutine on the server's loop (the hub lives there) and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        async def _call() -> T:
            return fn(*args)

        return self.run(_call())

    async def arun(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """`run` for async tests: waits without blocking the test's own loop."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout)

    async def acall(self, fn: Callable[..., T], *args: Any) -> T:
        async def _call() -> T:
            return fn(*args)

        return await self.arun(_call())

    async def add_camera(self, name: str, url: str, **fields: Any) -> int:
        """A real camera through the REST API; its pipeline starts and feeds the live hub."""
        body = {"name": name, "url": url, "vad": {"enabled": False}, **fields}
        async with httpx.AsyncClient(base_url=self.url, headers=AUTH, timeout=10) as client:
            response = await client.post("/api/cameras", json=body)
            assert response.status_code == 201, response.text
            return int(response.json()["id"])

    async def wait_streaming(self, camera_id: int, timeout: float = 20.0) -> None:
        status: dict[str, Any] = {}
        async with httpx.AsyncClient(base_url=self.url, headers=AUTH, timeout=10) as client:

            async def streaming() -> bool:
                nonlocal status
                status = (await client.get(f"/api/cameras/{camera_id}/status")).json()
                return bool(status["state"] == "streaming")

            await eventually(streaming, timeout, what=lambda: f"camera {camera_id} streaming ({status})")

    async def add_camera_rows(self, *names: str) -> list[int]:
        """Camera rows straight into the DB: the ids /ws/live accepts (no pipeline is started)."""

        async def _add() -> list[int]:
            async with self.app.state.runtime.sessionmaker.begin() as session:
                rows = [Camera(name=n, url=f"/dev/null/{n}") for n in names]
                session.add_all(rows)
                await session.flush()
                return [r.id for r in rows]

        return await self.arun(_add())


class Producer:
    """Offers frames for some cameras at a fixed rate on the server loop, as a camera pipeline would."""

    def __init__(self, hub: LiveHub, camera_ids: list[int], fps: float, images: list[np.ndarray]) -> None:
        self.hub, self.camera_ids, self.fps, self.images = hub, camera_ids, fps, images
        self.offered = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        for seq in itertools.count():
            image = self.images[seq % len(self.images)]
            h, w = image.shape[:2]
            for camera_id in self.camera_ids:
                self.hub.offer(Frame(camera_id, seq, time.time(), image, w, h))
            self.offered += 1
            due += 1.0 / self.fps
            await asyncio.sleep(max(0.0, due - loop.time()))


@pytest.fixture(scope="session")
def video_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "square.avi")


@pytest.fixture
def live_settings(tmp_path: Path, video_file: Path) -> Settings:
    """The shared clip's folder is the media directory: only files there are accepted as cameras."""
    return make_settings(tmp_path / "data", media_dir=video_file.parent)


def _serve(settings: Settings) -> Iterator[LiveServer]:
    port = free_port()
    app = create_app(settings.model_copy(update={"port": port}))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws_ping_interval=5)
    server = uvicorn.Server(config)
    loop = asyncio.new_event_loop()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.serve())
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="argus.test-live-server", daemon=True)
    thread.start()

    def started() -> bool:
        assert thread.is_alive(), "test server exited while starting"
        return bool(server.started)

    wait_until(started, 30, interval=0.02, what="test server start")
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", app, loop)
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture
def live_server(live_settings: Settings) -> Iterator[LiveServer]:
    yield from _serve(live_settings)
