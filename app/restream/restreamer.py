"""Restreamer: one camera's analysed video, taken from the live hub like a viewer, annotated, published.

It subscribes to the hub at its fps (so the camera decodes, exactly as for a viewer, and each frame is
JPEG-encoded once for every viewer and it together), decodes and scales each JPEG in a thread, draws the
overlays from the boxes, events and zones the hub also sends, and offers the picture to its Publisher.
RestreamManager owns one per enabled restream and applies changes from the API.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

import cv2
import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.tasks import cancel_and_wait, spawn
from app.live.hub import Closed, LiveHub
from app.live.protocol import unpack_frame
from app.models import Camera, Restream
from app.restream.overlay import Annotations, draw
from app.restream.publisher import Publisher
from app.restream.repository import RestreamRepository

log = logging.getLogger("argus.restream")


@dataclass(frozen=True, slots=True)
class RestreamSpec:
    camera_id: int
    name: str
    url: str
    fps: float
    width: int
    overlays: tuple[str, ...]
    zones: tuple[tuple[tuple[float, float], ...], ...] = ()


def camera_zones(analyzers: Sequence[dict[str, Any]]) -> tuple[tuple[tuple[float, float], ...], ...]:
    """The zone polygons of a camera's analyzers (`options.zones: [{"name", "polygon"}]`)."""
    zones = []
    for spec in analyzers:
        for zone in (spec.get("options") or {}).get("zones") or []:
            polygon = zone.get("polygon") if isinstance(zone, dict) else None
            if polygon:
                zones.append(tuple((float(x), float(y)) for x, y in polygon))
    return tuple(zones)


def decode_scaled(jpeg: bytes, width: int) -> np.ndarray | None:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return None
    h, w = image.shape[:2]
    height = max(2, round(h * width / w / 2) * 2)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


class Restreamer:
    def __init__(self, spec: RestreamSpec, hub: LiveHub, publisher: Publisher | None = None) -> None:
        self.spec = spec
        self._hub = hub
        self.publisher = publisher or Publisher(spec.url, spec.fps, name=str(spec.camera_id))
        self._notes = Annotations(zones=list(spec.zones))
        self._task: asyncio.Task[Any] | None = None

    async def __aenter__(self) -> Self:
        self.publisher.start()
        self._task = spawn(self._run(), name=f"argus.restream:{self.spec.camera_id}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await cancel_and_wait(self._task)
        await asyncio.to_thread(self.publisher.stop)

    async def _run(self) -> None:
        client = self._hub.connect()
        self._hub.subscribe(client, [self.spec.camera_id], self.spec.fps)
        try:
            while True:
                message = await client.next_message(timeout=30)
                if isinstance(message, Closed):
                    return
                if isinstance(message, bytes):
                    await self._frame(message)
                elif isinstance(message, str):
                    self._note(message)
        finally:
            self._hub.disconnect(client)

    async def _frame(self, message: bytes) -> None:
        header, jpeg = unpack_frame(message)
        image = await asyncio.to_thread(decode_scaled, jpeg, self.spec.width)
        if image is not None:
            draw(image, self._notes, self.spec.overlays, header["captured_at"])
            self.publisher.offer(image)

    def _note(self, text: str) -> None:
        message = json.loads(text)
        if message.get("type") == "detections":
            self._notes.boxes = message["detections"]
            self._notes.source_size = (message["width"], message["height"])
        elif message.get("type") == "event":
            event = message["event"]
            self._notes.score = None if event.get("phase") == "close" else event.get("score")

    def stats(self) -> dict[str, Any]:
        return {"camera_id": self.spec.camera_id, "fps": self.spec.fps, **self.publisher.stats()}


class RestreamManager:
    """camera id -> Restreamer; apply() starts, replaces or stops one to match the stored config."""

    def __init__(self, hub: LiveHub) -> None:
        self._hub = hub
        self._running: dict[int, Restreamer] = {}
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        async with self._lock:
            running, self._running = list(self._running.values()), {}
        for restreamer in running:
            await restreamer.__aexit__()

    async def apply(self, camera_id: int, spec: RestreamSpec | None) -> None:
        async with self._lock:
            old = self._running.pop(camera_id, None)
            if old is not None:
                await old.__aexit__()
            if spec is not None:
                self._running[camera_id] = await Restreamer(spec, self._hub).__aenter__()

    async def camera_deleted(self, camera_id: int) -> None:
        await self.apply(camera_id, None)

    def stats(self) -> dict[str, Any]:
        return {str(cid): r.stats() for cid, r in self._running.items()}


def spec_of(row: Restream, camera: Camera) -> RestreamSpec | None:
    if not row.enabled:
        return None
    return RestreamSpec(
        row.camera_id,
        camera.name,
        row.url,
        row.fps,
        row.width,
        tuple(row.overlays),
        camera_zones(camera.analyzers),
    )


async def load_restreams(sessionmaker: async_sessionmaker[AsyncSession], manager: RestreamManager) -> None:
    async with sessionmaker() as session:
        pairs = await RestreamRepository(session).enabled()
        specs = [spec_of(row, camera) for row, camera in pairs]
    for spec in specs:
        if spec is not None:
            await manager.apply(spec.camera_id, spec)
