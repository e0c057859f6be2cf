"""RepositoryBase: the session lives on the repository; all SQL of a domain lives in its subclass."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

M = TypeVar("M")


class InvalidCursor(ValueError):
    pass


def encode_cursor(at: datetime, row_id: Any) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{row_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(at), row_id
    except Exception as exc:
        raise InvalidCursor("cursor is not valid") from exc


class RepositoryBase(Generic[M]):
    model: ClassVar[type[Any]]

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, id_: Any) -> M | None:
        return await self.session.get(self.model, id_)

    async def get_one_or_none(self, stmt: Select[Any]) -> M | None:
        return (await self.session.execute(stmt)).scalars().first()

    async def list(self, stmt: Select[Any] | None = None) -> Sequence[M]:
        stmt = stmt if stmt is not None else select(self.model).order_by(self.model.id)
        return (await self.session.execute(stmt)).scalars().all()

    async def add(self, obj: M) -> M:
        self.session.add(obj)
        await self.session.flush()
        return obj

    async def delete(self, obj: M) -> None:
        await self.session.delete(obj)
        await self.session.flush()

    async def page(
        self, stmt: Select[Any], time_col: Any, id_col: Any, cursor: str | None, limit: int
    ) -> tuple[Sequence[M], str | None]:
        """Newest first keyset page over (time_col, id_col); the cursor is the last row's key."""
        if cursor:
            at, row_id = decode_cursor(cursor)
            key_id: Any = int(row_id) if row_id.isdigit() and _is_int_col(id_col) else row_id
            stmt = stmt.where(or_(time_col < at, and_(time_col == at, id_col < key_id)))
        stmt = stmt.order_by(time_col.desc(), id_col.desc()).limit(limit + 1)
        rows = (await self.session.execute(stmt)).scalars().all()
        if len(rows) <= limit:
            return rows, None
        rows = rows[:limit]
        last = rows[-1]
        return rows, encode_cursor(getattr(last, time_col.key), getattr(last, id_col.key))


def _is_int_col(col: Any) -> bool:
    try:
        return col.type.python_type is int
    except NotImplementedError:
        return False
