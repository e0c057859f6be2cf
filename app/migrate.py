"""Schema upgrades through Alembic, from code: `argus migrate`, and the embedded-SQLite auto-upgrade."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["sqlalchemy.url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


async def upgrade_async(url: str) -> None:
    # Alembic's env runs its own event loop for async engines: keep it off ours.
    await asyncio.to_thread(upgrade, url)


async def pending_revisions(engine: AsyncEngine, url: str) -> bool:
    """True when the database is not at head (PostgreSQL refuses to start then)."""
    script = ScriptDirectory.from_config(alembic_config(url))
    async with engine.connect() as conn:
        current = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_heads())
    return set(current) != set(script.get_heads())
