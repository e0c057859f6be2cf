"""What outside integrations (MQTT) need from the cameras: a snapshot of each camera, and on/off.

Integrations sit upstream of the cameras domain and never import it; the lifespan hands them these.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.cameras.config import CameraConfig
from app.cameras.manager import MultiCameraManager
from app.cameras.repository import CameraRepository
from app.cameras.schemas import CameraUpdate
from app.cameras.service import CameraService
from app.integrations.mqtt.topics import CameraInfo
from app.kit.db import complete

# The event type each built-in analyzer raises; others announce theirs when they first raise one.
EVENT_TYPES = {"vad": "anomaly", "detector": "object"}


def event_types(config: CameraConfig) -> tuple[str, ...]:
    return tuple(dict.fromkeys(EVENT_TYPES[s["name"]] for s in config.chain() if s["name"] in EVENT_TYPES))


def camera_lister(
    sessionmaker: async_sessionmaker[AsyncSession], get_manager: Callable[[], MultiCameraManager | None]
) -> Callable[[], Awaitable[list[CameraInfo] | None]]:
    """None until the manager exists (an integration starts before the cameras, so it stops after them
    and publishes their last events)."""

    async def cameras() -> list[CameraInfo] | None:
        manager = get_manager()
        if manager is None:
            return None
        async with sessionmaker() as session:
            configs = [CameraConfig.from_row(r) for r in await CameraRepository(session).list()]
        infos = []
        for c in configs:
            status = manager.status(c.id)
            infos.append(CameraInfo(c.id, c.name, c.enabled, status.state, status.fps_in, event_types(c)))
        return infos

    return cameras


def camera_switch(
    sessionmaker: async_sessionmaker[AsyncSession],
    get_manager: Callable[[], MultiCameraManager | None],
    media_dir: Path,
) -> Callable[[int, bool], Awaitable[None]]:
    """Enable or disable a camera the way `PATCH /api/cameras/{id}` does (row first, then pipeline)."""

    async def set_enabled(camera_id: int, enabled: bool) -> None:
        manager = get_manager()
        if manager is None:
            raise RuntimeError("cameras are not running yet")
        async with sessionmaker() as session:
            await CameraService(session, manager, media_dir).update(camera_id, CameraUpdate(enabled=enabled))
            await complete(session)

    return set_enabled
