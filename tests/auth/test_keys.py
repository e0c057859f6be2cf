"""KeyVerifier: stored keys are cached for a TTL and last_used_at is written at most once a minute."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, event, select, update

from app.auth.keys import KeyVerifier, create_key, hash_key
from app.config import Settings
from app.lifespan import Runtime
from app.main import create_app
from app.models import ApiKey


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class SqlCounter:
    """Statements on api_keys, counted on the real engine (SQLAlchemy cursor events)."""

    statements: list[str] = field(default_factory=list)

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "api_keys" in statement:
            self.statements.append(statement.split(None, 1)[0].upper())

    def count(self, verb: str) -> int:
        return self.statements.count(verb)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
def rt(app: FastAPI) -> Runtime:
    return app.state.runtime  # type: ignore[no-any-return]


@pytest.fixture
def sql(rt: Runtime) -> SqlCounter:
    counter = SqlCounter()
    event.listen(rt.engine.sync_engine, "before_cursor_execute", counter)
    return counter


async def stored_key(rt: Runtime, name: str = "ci") -> str:
    async with rt.sessionmaker.begin() as session:
        return await create_key(session, name)


async def test_many_verifications_write_last_used_at_once_per_minute(rt: Runtime, sql: SqlCounter) -> None:
    clock = Clock()
    verifier = KeyVerifier([], rt.sessionmaker, clock=clock)
    key = await stored_key(rt)
    sql.statements.clear()

    assert all([await verifier.verify(key) for _ in range(50)])
    await verifier.drain()
    assert (sql.count("SELECT"), sql.count("UPDATE")) == (1, 1)  # one lookup, one write, 50 requests

    clock.now += 59
    assert all([await verifier.verify(key) for _ in range(50)])
    await verifier.drain()
    assert (sql.count("SELECT"), sql.count("UPDATE")) == (1, 1)  # all from the cache, no write

    clock.now += 2  # past the minute: one fresh lookup and one more write
    assert all([await verifier.verify(key) for _ in range(50)])
    await verifier.drain()
    assert (sql.count("SELECT"), sql.count("UPDATE")) == (2, 2)
    async with rt.sessionmaker() as session:
        used = (await session.execute(select(ApiKey.last_used_at))).scalar_one()
    assert used is not None


@pytest.mark.parametrize("how", ["revoked", "deleted"])
async def test_a_revoked_or_deleted_key_stops_working_within_the_ttl(rt: Runtime, how: str) -> None:
    clock = Clock()
    verifier = KeyVerifier([], rt.sessionmaker, clock=clock)
    key = await stored_key(rt)
    assert await verifier.verify(key)
    async with rt.sessionmaker.begin() as session:
        where = ApiKey.key_hash == hash_key(key)
        await session.execute(
            update(ApiKey).where(where).values(revoked=True)
            if how == "revoked"
            else delete(ApiKey).where(where)
        )

    clock.now += 30
    assert await verifier.verify(key)  # still cached: the documented price of the TTL
    clock.now += 31
    assert not await verifier.verify(key)
    assert not await verifier.verify(key)
    await verifier.drain()


async def test_unknown_keys_are_not_cached_so_a_new_key_works_at_once(rt: Runtime) -> None:
    verifier = KeyVerifier(["static-key"], rt.sessionmaker, clock=Clock())
    key = "argus_made_up_for_this_test"
    assert not await verifier.verify(key)
    assert not await verifier.verify(None) and not await verifier.verify("")
    async with rt.sessionmaker.begin() as session:
        session.add(ApiKey(name="new", prefix=key[:10], key_hash=hash_key(key)))
    assert await verifier.verify(key)
    assert await verifier.verify("static-key")
    await verifier.drain()


async def test_authenticated_requests_do_not_each_write(app: FastAPI, rt: Runtime, sql: SqlCounter) -> None:
    key = await stored_key(rt)
    sql.statements.clear()
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://argus", headers=headers) as client:
        for _ in range(30):
            assert (await client.get("/api/cameras")).status_code == 200
        assert (await client.get("/api/cameras", headers={"Authorization": "Bearer nope"})).status_code == 401
    await app.state.runtime.verifier.drain()
    assert sql.count("UPDATE") == 1
    assert sql.count("SELECT") == 2  # the first request, and the unknown key (never cached)
