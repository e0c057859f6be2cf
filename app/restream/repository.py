"""RestreamRepository: every restreams SQL statement."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from app.cameras.repository import CameraRepository
from app.kit.repository import RepositoryBase
from app.models import Camera, Restream


class RestreamRepository(RepositoryBase[Restream]):
    model = Restream

    async def enabled(self) -> Sequence[tuple[Restream, Camera]]:
        stmt = select(Restream, Camera).join(Camera, Camera.id == Restream.camera_id).where(Restream.enabled)
        return [(r, c) for r, c in (await self.session.execute(stmt)).all()]

    async def camera(self, camera_id: int) -> Camera | None:
        return await CameraRepository(self.session).get(camera_id)
