"""CameraRepository: all camera SQL. A leaf (models and kit only): every domain that asks about cameras
(alerts, live, recording, restream) imports this module, never the cameras runtime."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

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
        return camera_id in await self.existing_ids([camera_id])

    async def existing_ids(self, ids: Iterable[int] | None = None) -> set[int]:
        """Which of `ids` are cameras (None: every camera's id): the one camera-exists lookup."""
        stmt = select(Camera.id)
        if ids is not None:
            wanted = set(ids)
            if not wanted:
                return set()
            stmt = stmt.where(Camera.id.in_(wanted))
        return set((await self.session.execute(stmt)).scalars())

    async def names_and_urls(self, ids: Iterable[int]) -> dict[int, tuple[str, str]]:
        wanted = set(ids)
        if not wanted:
            return {}
        stmt = select(Camera.id, Camera.name, Camera.url).where(Camera.id.in_(wanted))
        return {i: (n, u) for i, n, u in (await self.session.execute(stmt)).all()}

    async def names(self, ids: Iterable[int]) -> dict[int, str]:
        return {i: name for i, (name, _url) in (await self.names_and_urls(ids)).items()}

    async def record_options(self) -> dict[int, dict[str, Any]]:
        """camera id -> its `record` options (retention reads retain_days)."""
        rows = await self.session.execute(select(Camera.id, Camera.record))
        return {cid: record or {} for cid, record in rows}

    async def by_names(self, names: Iterable[str]) -> Sequence[Camera]:
        return await self.list(select(Camera).where(Camera.name.in_(list(names))).order_by(Camera.id))
