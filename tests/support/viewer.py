"""A recording /ws/live client for tests and the benchmark (the `websockets` library, real sockets)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect

from app.live.protocol import unpack_frame
from tests.support import media
from tests.support.waiting import eventually


class Viewer:
    """Reads everything the server sends: frame arrival times per camera and every JSON message."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[tuple[float, dict[str, Any], int]] = []  # (monotonic arrival, header, jpeg size)
        self.texts: list[dict[str, Any]] = []
        self.closed_code: int | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, url: str, *, read: bool = True, **kwargs: Any) -> Viewer:
        viewer = cls(await connect(url, max_size=None, **kwargs))
        if read:
            viewer._task = asyncio.get_running_loop().create_task(viewer._read())
        return viewer

    @classmethod
    async def open_stalled(cls, url: str) -> Viewer:
        """A client that never reads, with the smallest receive buffers: the server's sends block soon."""
        host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        return await cls.open(url, read=False, sock=sock, max_queue=1)

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if isinstance(message, bytes):
                    header, jpeg = unpack_frame(message)
                    self.frames.append((time.monotonic(), header, len(jpeg)))
                else:
                    self.texts.append(json.loads(message))
        finally:
            self.closed_code = self.ws.close_code

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.ws.send(message if isinstance(message, str) else json.dumps(message))

    async def subscribe(self, camera_ids: list[int], fps: float | None = None) -> dict[str, Any]:
        msg: dict[str, Any] = {"type": "subscribe", "camera_ids": camera_ids}
        if fps is not None:
            msg["fps"] = fps
        start = len(self.texts)
        await self.send(msg)
        return await self.expect("subscribed", after=start)

    async def expect(
        self, type_: str, *, after: int = 0, timeout: float = 5.0, **match: Any
    ) -> dict[str, Any]:
        """The first JSON message of this type (and these field values) received after index `after`."""

        def found() -> dict[str, Any] | None:
            for msg in self.texts[after:]:
                if msg.get("type") == type_ and all(msg.get(k) == v for k, v in match.items()):
                    return msg
            return None

        what = lambda: f"a {type_} {match or ''} message (got {self.texts[after:]})"  # noqa: E731
        return await eventually(found, timeout, interval=0.01, what=what)  # type: ignore[return-value]

    async def wait_frames(self, camera_id: int, count: int = 1, timeout: float = 10.0) -> float:
        """Wait until `count` frames of the camera arrived; returns the arrival time of the last one."""

        def arrived() -> float | None:
            got = [t for t, h, _ in self.frames if h["camera_id"] == camera_id]
            return got[count - 1] if len(got) >= count else None

        what = f"camera {camera_id}: {count} frames"
        return await eventually(arrived, timeout, interval=0.01, what=what)  # type: ignore[return-value]

    def count(self, camera_id: int, start: float, end: float) -> int:
        return sum(1 for t, h, _ in self.frames if h["camera_id"] == camera_id and start <= t < end)

    def rate(self, camera_id: int, start: float, end: float) -> float:
        return self.count(camera_id, start, end) / (end - start)

    def abort(self) -> None:
        """Drop the TCP connection without a close handshake (a stalled peer never completes one)."""
        self.ws.transport.abort()

    async def close(self) -> None:
        await self.ws.close()
        if self._task is not None:
            await asyncio.wait_for(self._task, 5)


async def measure_window(seconds: float) -> tuple[float, float]:
    """(start, end) monotonic times of a window that has just fully elapsed."""
    start = time.monotonic()
    await asyncio.sleep(seconds)  # the measurement window itself, not a synchronisation
    return start, time.monotonic()


def moving_frames(width: int, height: int, count: int = 24, noise: bool = False) -> list[np.ndarray]:
    """A square crossing the picture (or random noise: large JPEGs that fill socket buffers fast)."""
    rng = np.random.default_rng(7)
    frames = []
    for i in range(count):
        if noise:
            img = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        else:
            img = np.full((height, width, 3), 40, np.uint8)
            x = int((width - height // 3) * i / max(1, count - 1))
            img[height // 3 : 2 * height // 3, x : x + height // 3] = (60, 200, 255)
        frames.append(img)
    return frames


def write_video(path: Path, width: int = 320, height: int = 180, fps: int = 15, seconds: int = 10) -> Path:
    """A short clip with motion all the way through: a real file camera (files loop at native FPS)."""
    return media.write_video(path, seconds, fps, (width, height), motion=(0.0, float(seconds)))
