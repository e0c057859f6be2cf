"""The unit of work (app.kit.db): it commits once, then runs the runtime steps; a rollback runs none."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from app.kit.db import after_commit, complete, create_engine, create_sessionmaker, session_scope


async def test_steps_run_after_the_commit_in_order_and_only_once(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'uow.db'}")
    order: list[str] = []

    def committed(_: Session) -> None:
        order.append("commit")

    event.listen(Session, "after_commit", committed)
    try:
        scope = session_scope(create_sessionmaker(engine))
        session = await anext(scope)

        async def first() -> None:
            order.append("first")

        async def second() -> None:
            order.append("second")

        after_commit(session, first)
        after_commit(session, second)
        await complete(session)  # an endpoint that reports the runtime's state after the write
        with pytest.raises(StopAsyncIteration):
            await anext(scope)  # the dependency's end: nothing left to run
    finally:
        event.remove(Session, "after_commit", committed)
        await engine.dispose()
    assert order[:3] == ["commit", "first", "second"]
    assert order.count("first") == 1 and order.count("second") == 1


async def test_a_failed_request_rolls_back_and_runs_no_step(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'uow.db'}")
    ran: list[str] = []
    try:
        scope = session_scope(create_sessionmaker(engine))
        session = await anext(scope)
        await session.execute(text("CREATE TABLE t (x INTEGER)"))

        async def step() -> None:
            ran.append("step")

        after_commit(session, step)
        with pytest.raises(RuntimeError):
            await scope.athrow(RuntimeError("the endpoint failed"))
    finally:
        await engine.dispose()
    assert ran == []
