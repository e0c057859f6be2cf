"""Alembic on SQLite and PostgreSQL: head -> base -> head, the models match the migrated schema, and
`argus serve` refuses an out-of-date PostgreSQL schema."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from app.kit.db import create_engine
from app.lifespan import SchemaOutOfDate, prepare_database
from app.migrate import alembic_config, downgrade, upgrade
from app.models import Base
from tests.conftest import make_settings
from tests.support.services import fresh_postgres_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def scratch_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind, for this test alone (migrations must not touch the shared one)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrate.db'}"
        return
    with ThreadPoolExecutor(1) as ex:  # its setup runs an event loop of its own
        cm = fresh_postgres_database()
        url = ex.submit(cm.__enter__).result()
    try:
        yield url
    finally:
        with ThreadPoolExecutor(1) as ex:
            ex.submit(cm.__exit__, None, None, None).result()


def _inspect(conn: Connection) -> dict[str, Any]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
    return {
        "tables": set(inspect(conn).get_table_names()) - {"alembic_version"},
        "heads": set(ctx.get_current_heads()),
        "diff": compare_metadata(ctx, Base.metadata),
    }


async def schema(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_inspect)
    finally:
        await engine.dispose()


def heads(url: str) -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config(url)).get_heads())


class TestMigrations:
    async def test_upgrade_downgrade_upgrade_matches_the_models(self, scratch_url: str) -> None:
        # Alembic's env runs its own event loop: keep it in a thread
        await asyncio.to_thread(upgrade, scratch_url)
        first = await schema(scratch_url)
        assert first["tables"] == set(Base.metadata.tables)
        assert first["heads"] == heads(scratch_url)
        assert first["diff"] == [], "models and migrations disagree: add a migration"

        await asyncio.to_thread(downgrade, scratch_url, "base")
        down = await schema(scratch_url)
        assert down["tables"] == set() and down["heads"] == set()

        await asyncio.to_thread(upgrade, scratch_url)
        again = await schema(scratch_url)
        assert again["tables"] == first["tables"] and again["diff"] == []

    async def test_out_of_date_schema_is_refused_naming_argus_migrate(
        self, scratch_url: str, tmp_path: Path
    ) -> None:
        # auto_migrate only ever applies to SQLite; turn it off so both databases take the refusing path
        settings = make_settings(tmp_path / "data", database_url=scratch_url, auto_migrate=False)
        engine = create_engine(scratch_url)
        try:
            with pytest.raises(SchemaOutOfDate, match="argus migrate"):
                await prepare_database(settings, engine)
            await asyncio.to_thread(upgrade, scratch_url)
            await prepare_database(settings, engine)  # at head: starts
            await asyncio.to_thread(downgrade, scratch_url, "-1")
            with pytest.raises(SchemaOutOfDate, match="argus migrate"):
                await prepare_database(settings, engine)
        finally:
            await engine.dispose()

    @pytest.mark.postgres
    async def test_postgres_never_auto_migrates(self, tmp_path: Path) -> None:
        with ThreadPoolExecutor(1) as ex:
            cm = fresh_postgres_database()
            url = ex.submit(cm.__enter__).result()
        try:
            settings = make_settings(tmp_path / "data", database_url=url, auto_migrate=True)
            engine = create_engine(url)
            try:
                with pytest.raises(SchemaOutOfDate, match="argus migrate") as err:
                    await prepare_database(settings, engine)
                assert "postgres" in str(err.value)  # names the URL it looked at
                assert (await schema(url))["tables"] == set()
            finally:
                await engine.dispose()
        finally:
            with ThreadPoolExecutor(1) as ex:
                ex.submit(cm.__exit__, None, None, None).result()

    async def test_embedded_sqlite_upgrades_itself_at_start(self, tmp_path: Path) -> None:
        settings = make_settings(tmp_path / "data")
        engine = create_engine(settings.database_url)
        try:
            await prepare_database(settings, engine)
        finally:
            await engine.dispose()
        migrated = await schema(settings.database_url)
        assert migrated["heads"] == heads(settings.database_url) and migrated["diff"] == []
