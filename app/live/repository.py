"""The one query live view needs: which of these camera ids exist."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import Camera


async def existing_camera_ids(sessionmaker: async_sessionmaker[AsyncSession], ids: Iterable[int]) -> set[int]:
    wanted = set(ids)
    if not wanted:
        return set()
    async with sessionmaker() as session:
        rows = await session.scalars(select(Camera.id).where(Camera.id.in_(wanted)))
        return set(rows)
