"""Engine and session factories: SQLite (WAL, busy timeout) by default, PostgreSQL via asyncpg."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def session_scope(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A request's unit of work: on success `complete()` (commit, then the runtime steps); on error roll
    back, and the queued runtime steps never run. Services flush; only this commits."""
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException:
            session.info.pop(_AFTER_COMMIT, None)
            await session.rollback()
            raise
        await complete(session)


_AFTER_COMMIT = "argus.after_commit"


def after_commit(session: AsyncSession, step: Callable[[], Awaitable[None]]) -> None:
    """Queue a runtime step (start a pipeline, refresh a cache) to run once this unit of work committed:
    the runtime follows the database, never the reverse, so a rolled-back write starts nothing."""
    session.info.setdefault(_AFTER_COMMIT, []).append(step)


async def complete(session: AsyncSession) -> None:
    """Commit the unit of work, then run its queued runtime steps in order (the first failure propagates,
    as a 500: the write stays committed, which is what a client reading it back sees).

    The session dependency calls this at the end of every request; an endpoint whose response shows the
    runtime's state after the write (a camera's pipeline state) calls it first, and the final call then
    finds nothing left to do."""
    await session.commit()
    steps: list[Callable[[], Awaitable[None]]] = session.info.pop(_AFTER_COMMIT, [])
    for step in steps:
        await step()
