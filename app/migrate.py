"""Schema upgrades through Alembic, from code: `argus migrate`, and the embedded-SQLite auto-upgrade."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.kit.db import create_engine

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


@dataclass(frozen=True)
class Migration:
    """What `argus migrate` did: the revisions before and after, for a line that says so."""

    url: str
    before: tuple[str, ...]
    after: tuple[str, ...]

    def describe(self) -> str:
        where = make_url(self.url).render_as_string(hide_password=True)
        after = ", ".join(self.after)
        if self.before == self.after:
            return f"{where}: already at the latest revision {after}, nothing to do"
        before = ", ".join(self.before) or "empty (no tables)"
        return f"{where}: upgraded from {before} to {after} (the latest revision)"


async def current_revisions(url: str) -> tuple[str, ...]:
    engine = create_engine(url)  # a SQLite file's folder is made, as the app would
    try:
        async with engine.connect() as conn:
            heads = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_heads())
    finally:
        await engine.dispose()
    return tuple(sorted(heads))


def migrate(url: str) -> Migration:
    """Upgrade to head and say from what to what (Alembic's own env runs its loop: call off any loop)."""
    before = asyncio.run(current_revisions(url))
    upgrade(url)
    return Migration(url, before, asyncio.run(current_revisions(url)))
