"""AsyncEventLogger on real SQLite and PostgreSQL: batching, upserts, outages, spill files and replay."""

from __future__ import annotations

import asyncio
import inspect
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.events.logger import AsyncEventLogger
from app.events.types import NewEvent, Phase, utcnow
from app.kit.db import create_engine, create_sessionmaker
from app.kit.severity import Severity
from app.models import Event
from tests.support.waiting import eventually


@dataclass
class Db:
    url: str
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    commits: list[float]

    async def count(self) -> int:
        async with self.sessionmaker() as s:
            return int(await s.scalar(select(func.count()).select_from(Event)) or 0)

    async def row(self, event_id: str) -> Event | None:
        async with self.sessionmaker() as s:
            return await s.get(Event, event_id)

    async def create_table(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(lambda c: Event.__table__.create(c, checkfirst=True))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    url: str = request.getfixturevalue("clean_postgres_url")
    return url


async def _open_db(url: str, *, with_table: bool = True) -> Db:
    engine = create_engine(url)
    commits: list[float] = []
    event.listen(engine.sync_engine, "commit", lambda _conn: commits.append(time.monotonic()))
    db = Db(url, engine, create_sessionmaker(engine), commits)
    if with_table:
        await db.create_table()
    db.commits.clear()
    return db


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Db]:
    db = await _open_db(db_url)
    yield db
    await db.engine.dispose()


@pytest.fixture
async def sqlite_db_without_table(tmp_path: Path) -> AsyncIterator[Db]:
    """A database that refuses every event write (no events table) until the test creates it."""
    db = await _open_db(f"sqlite+aiosqlite:///{tmp_path / 'down.db'}", with_table=False)
    yield db
    await db.engine.dispose()


def make_logger(db: Db, spill_dir: Path, **kw: Any) -> AsyncEventLogger:
    opts: dict[str, Any] = {
        "flush_size": 10,
        "flush_interval_s": 60.0,  # only the size or the test triggers a flush unless it says otherwise
        "retry_initial_s": 0.02,
        "retry_max_s": 0.1,
        "shutdown_timeout_s": 0.3,
    }
    opts.update(kw)
    return AsyncEventLogger(db.sessionmaker, spill_dir, **opts)


def ev(**kw: Any) -> NewEvent:
    values: dict[str, Any] = {"camera_id": 1, "type": "anomaly", "severity": Severity.medium}
    values.update(kw)
    values.setdefault("started_at", utcnow())
    return NewEvent(**values)


def spill_lines(spill_dir: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(spill_dir.glob("events-*.jsonl"))
        for line in path.read_text().splitlines()
    ]


class TestBatching:
    async def test_ten_events_are_written_in_one_transaction(self, db: Db, tmp_path: Path) -> None:
        async with make_logger(db, tmp_path / "spill") as logger:
            # when
            for _ in range(10):
                logger.log(ev())
            await eventually(lambda: logger.flushes == 1, 10)
            # then
            assert await db.count() == 10
            assert len(db.commits) == 1
            assert logger.stats()["flushed"] == 10

    async def test_fewer_events_are_written_once_the_interval_passes(self, db: Db, tmp_path: Path) -> None:
        async with make_logger(db, tmp_path / "spill", flush_interval_s=0.2) as logger:
            for _ in range(3):
                logger.log(ev())
            await eventually(lambda: logger.flushes == 1, 10)
            assert await db.count() == 3
            assert len(db.commits) == 1

    async def test_everything_buffered_is_written_at_shutdown(self, db: Db, tmp_path: Path) -> None:
        logger = make_logger(db, tmp_path / "spill", flush_size=1000)
        async with logger:
            for _ in range(7):
                logger.log(ev())
            assert await db.count() == 0
        assert await db.count() == 7
        assert len(db.commits) == 1

    async def test_log_returns_at_once_and_is_not_a_coroutine(self, db: Db, tmp_path: Path) -> None:
        async with make_logger(db, tmp_path / "spill") as logger:
            assert not inspect.iscoroutinefunction(logger.log)
            assert logger.log(ev()) is None
            assert logger.stats()["buffered"] == 1  # accepted before any await


class TestUpsert:
    async def test_a_closing_version_updates_the_row(self, db: Db, tmp_path: Path) -> None:
        opened = ev(severity=Severity.high, score=3.0)
        async with make_logger(db, tmp_path / "spill") as logger:
            logger.log(opened)
            await logger.flush()
            first = await db.row(opened.id)
            assert first is not None and first.ended_at is None
            # when
            ended = utcnow()
            logger.log(opened.evolve(phase=Phase.close, ended_at=ended, score=5.5, description="car"))
            await logger.flush()
        # then
        row = await db.row(opened.id)
        assert row is not None
        assert (row.ended_at, row.score, row.description) == (ended, 5.5, "car")
        assert row.created_at == first.created_at
        assert await db.count() == 1

    async def test_versions_of_one_event_in_one_flush_collapse_to_the_latest(
        self, db: Db, tmp_path: Path
    ) -> None:
        opened = ev()
        async with make_logger(db, tmp_path / "spill") as logger:
            logger.log(opened)
            logger.log(opened.evolve(phase=Phase.update, score=2.0))
            for _ in range(7):
                logger.log(ev())
            logger.log(opened.evolve(phase=Phase.close, score=1.0, ended_at=utcnow()))
            await eventually(lambda: logger.flushes == 1, 10)
        assert len(db.commits) == 1
        assert await db.count() == 8
        row = await db.row(opened.id)
        assert row is not None and row.score == 1.0 and row.ended_at is not None

    @pytest.mark.parametrize("one_flush", [False, True], ids=["separate-flushes", "one-flush"])
    async def test_a_version_evolved_from_an_older_copy_does_not_undo_newer_facts(
        self, db: Db, tmp_path: Path, one_flush: bool
    ) -> None:
        # given: the VLM describes the open version after the pipeline has closed (and raised) it
        opened = ev(severity=Severity.medium)
        closed = opened.evolve(phase=Phase.close, ended_at=utcnow(), severity=Severity.high)
        closed = closed.evolve(snapshot_path="a")
        described = opened.evolve(
            phase=Phase.update, description="a cat", score=0.5, data={"vlm": {"model": "m"}}
        )
        later = closed.evolve(phase=Phase.update, data={"peak": 9})  # the episode's copy knows no vlm
        async with make_logger(db, tmp_path / "spill") as logger:
            for version in (opened, closed, described, later):
                logger.log(version)
                if not one_flush:
                    await logger.flush()
            await logger.flush()
        row = await db.row(opened.id)
        assert row is not None
        assert (row.ended_at, row.severity, row.snapshot_path) == (closed.ended_at, "high", "a")
        assert row.description == "a cat"
        assert row.data == {"vlm": {"model": "m"}, "peak": 9}

    async def test_a_row_the_database_rejects_is_set_aside_and_the_rest_written(
        self, db: Db, tmp_path: Path
    ) -> None:
        spill = tmp_path / "spill"
        bad = ev(data={"blob": object()})  # not JSON: the database layer refuses it, retrying cannot help
        async with make_logger(db, spill) as logger:
            logger.log(bad)
            good = [ev() for _ in range(4)]
            for e in good:
                logger.log(e)
            await logger.flush()
            assert logger.rejected == 1
        assert await db.count() == 4
        rejected = [json.loads(x) for p in spill.glob("rejected-*.jsonl") for x in p.read_text().splitlines()]
        assert [r["id"] for r in rejected] == [bad.id]
        assert not list(spill.glob("events-*.jsonl"))  # rejected rows are not replayed blindly


class TestOutage:
    async def test_writer_stuck_on_a_locked_database_does_not_block_log(self, tmp_path: Path) -> None:
        db = await _open_db(f"sqlite+aiosqlite:///{tmp_path / 'locked.db'}")
        try:
            holder = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")  # another writer holds the lock; ours waits (busy_timeout)
            async with make_logger(db, tmp_path / "spill") as logger:
                for _ in range(10):
                    logger.log(ev())
                # the batch is in the stuck write
                await eventually(lambda: logger.stats()["buffered"] == 0, 10)
                for _ in range(500):
                    logger.log(ev())
                assert logger.stats()["buffered"] == 500
                holder.execute("COMMIT")
                holder.close()
                await eventually(lambda: logger.flushes >= 2, 10)
            assert await db.count() == 510
        finally:
            await db.engine.dispose()

    async def test_database_back_in_the_same_run_gets_everything_in_order(
        self, sqlite_db_without_table: Db, tmp_path: Path
    ) -> None:
        db, spill = sqlite_db_without_table, tmp_path / "spill"
        episode = ev(severity=Severity.low)
        async with make_logger(db, spill, buffer_max=20) as logger:
            # given: the database refuses writes; the buffer overflows once into a spill file
            logger.log(episode)
            for _ in range(29):
                logger.log(ev())
            await eventually(lambda: logger.spilled == 30, 10)
            assert logger.stats()["last_error"]
            logger.log(episode.evolve(phase=Phase.close, severity=Severity.high, ended_at=utcnow()))
            for _ in range(5):
                logger.log(ev())
            await eventually(lambda: logger.stats()["last_error"] and logger.stats()["buffered"] == 6, 10)
            # when: the database comes back
            await db.create_table()
            await eventually(lambda: logger.stats()["spill_files"] == logger.stats()["buffered"] == 0, 10)
        # then: nothing lost, and the spilled (older) version did not overwrite the newer one
        assert await db.count() == 35
        row = await db.row(episode.id)
        assert row is not None and row.severity == "high" and row.ended_at is not None
        assert logger.replayed == 30

    async def test_spilled_events_are_replayed_at_the_next_start(
        self, sqlite_db_without_table: Db, tmp_path: Path
    ) -> None:
        db, spill = sqlite_db_without_table, tmp_path / "spill"
        episode = ev()
        first = make_logger(db, spill, buffer_max=20)
        async with first:
            logger = first
            logger.log(episode)
            for _ in range(40):
                logger.log(ev())
                await asyncio.sleep(0)
            await eventually(lambda: logger.spilled >= 21, 10)
            logger.log(episode.evolve(phase=Phase.close, ended_at=utcnow(), description="closed"))
        # the database never came back: the shutdown spilled the rest, nothing was dropped
        assert first.spilled == 42
        assert len(spill_lines(spill)) == 42
        # when: the next start finds the database writable
        await db.create_table()
        async with make_logger(db, spill) as second:
            assert second.replayed == 42  # 42 versions of 41 events
        assert await db.count() == 41
        assert spill_lines(spill) == []
        row = await db.row(episode.id)
        assert row is not None and row.description == "closed"

    async def test_replay_keeps_the_file_while_the_database_stays_down(
        self, sqlite_db_without_table: Db, tmp_path: Path
    ) -> None:
        db, spill = sqlite_db_without_table, tmp_path / "spill"
        async with make_logger(db, spill) as logger:
            logger.log(ev())
        assert len(spill_lines(spill)) == 1
        async with make_logger(db, spill) as logger:  # still down at this start
            assert logger.replayed == 0
        assert len(spill_lines(spill)) == 1

    async def test_postgres_unreachable_buffers_then_spills_at_shutdown(self, tmp_path: Path) -> None:
        db = await _open_db("postgresql+asyncpg://argus@127.0.0.1:9/none", with_table=False)
        try:
            async with make_logger(db, tmp_path / "spill") as logger:
                for _ in range(12):
                    logger.log(ev())
                await eventually(lambda: logger.stats()["last_error"] is not None, 10)
                assert logger.stats()["buffered"] == 12
            assert logger.spilled == 12
            assert len(spill_lines(tmp_path / "spill")) == 12
        finally:
            await db.engine.dispose()

    async def test_an_event_logged_after_stop_is_spilled_not_lost(self, db: Db, tmp_path: Path) -> None:
        logger = make_logger(db, tmp_path / "spill")
        async with logger:
            pass
        late = ev()
        logger.log(late)
        assert [r["id"] for r in spill_lines(tmp_path / "spill")] == [late.id]
