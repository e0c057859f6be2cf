"""RecordingRepository: every query on the `recordings` index (continuous-recording segments)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, select

from app.kit.repository import RepositoryBase
from app.models import Recording


class RecordingRepository(RepositoryBase[Recording]):
    model = Recording

    async def by_path(self, path: str) -> Recording | None:
        return await self.get_one_or_none(select(Recording).where(Recording.path == path))

    async def unfinished(self) -> Sequence[Recording]:
        return await self.list(select(Recording).where(Recording.complete.is_(False)))

    async def ids_by_path(self) -> dict[str, int]:
        return {p: i for i, p in await self.session.execute(select(Recording.id, Recording.path))}

    async def delete_ids(self, ids: Iterable[int]) -> None:
        await self.session.execute(delete(Recording).where(Recording.id.in_(list(ids))))

    async def finished(self, before: datetime | None = None) -> list[tuple[int, str, datetime]]:
        """(id, path, started_at) of finished segments (one being written never), oldest first; those
        started before `before` only, when given."""
        stmt = select(Recording.id, Recording.path, Recording.started_at).where(Recording.complete.is_(True))
        if before is not None:
            stmt = stmt.where(Recording.started_at < before)
        return [(i, p, at) for i, p, at in await self.session.execute(stmt.order_by(Recording.started_at))]

    async def covering(self, camera_id: int, since: datetime, until: datetime) -> Sequence[Recording]:
        """Segments overlapping [since, until), oldest first (one being written counts as up to now)."""
        return await self.list(
            select(Recording)
            .where(Recording.camera_id == camera_id, Recording.started_at < until)
            .where((Recording.ended_at > since) | Recording.ended_at.is_(None))
            .order_by(Recording.started_at)
        )
