"""Dependencies, named once as Annotated aliases. Tests replace them with app.dependency_overrides."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.deps import ApiKeyDep
from app.kit.db import session_scope
from app.lifespan import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async for session in session_scope(get_runtime(request).sessionmaker):
        yield session


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
# scope="function": commit before the response is sent, so a client that reads right after a write
# sees it (a request-scoped yield dependency would commit only after the response went out).
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]

__all__ = ["ApiKeyDep", "RuntimeDep", "SessionDep", "get_runtime", "get_session"]
