"""CameraRepository: all camera SQL."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from app.kit.repository import RepositoryBase
from app.models import Camera


class CameraRepository(RepositoryBase[Camera]):
    model = Camera

    async def get_by_name(self, name: str) -> Camera | None:
        return await self.get_one_or_none(select(Camera).where(Camera.name == name))

    async def list_enabled(self) -> Sequence[Camera]:
        return await self.list(select(Camera).where(Camera.enabled).order_by(Camera.id))

    async def exists(self, camera_id: int) -> bool:
        return await self.get(camera_id) is not None
