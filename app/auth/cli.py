"""`argus apikey create | list | revoke`: the stored keys, from the command line (no server needed)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.repository import ApiKeyRepository
from app.config import Settings
from app.kit.db import create_engine, create_sessionmaker
from app.migrate import upgrade_async


@asynccontextmanager
async def _session(settings: Settings) -> AsyncIterator[AsyncSession]:
    if settings.is_sqlite:
        await upgrade_async(settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        async with create_sessionmaker(engine).begin() as session:
            yield session
    finally:
        await engine.dispose()


async def create_key(settings: Settings, name: str) -> str:
    async with _session(settings) as session:
        return (await ApiKeyRepository(session).add(name))[1]


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else "never"


async def list_keys(settings: Settings) -> str:
    async with _session(settings) as session:
        rows = await ApiKeyRepository(session).list()
    lines = [f"{'id':>4}  {'name':<20} {'prefix':<11} {'created (UTC)':<19}  {'last used (UTC)':<19}  status"]
    for r in rows:
        status = "revoked" if r.revoked else "active"
        lines.append(
            f"{r.id:>4}  {r.name[:20]:<20} {r.prefix:<11} {_when(r.created_at):<19}  "
            f"{_when(r.last_used_at):<19}  {status}"
        )
    return "\n".join(lines) if rows else "no stored API keys (keys in ARGUS_API_KEYS are not stored)"


async def revoke_key(settings: Settings, id_or_prefix: str) -> tuple[int, str]:
    """(exit status, message): a key is named by its id or its prefix; an ambiguous prefix revokes nothing."""
    async with _session(settings) as session:
        repo = ApiKeyRepository(session)
        rows = await repo.find(id_or_prefix)
        if not rows:
            return 1, f"argus: apikey revoke: no stored key {id_or_prefix!r} (see `argus apikey list`)"
        if len(rows) > 1:
            ids = ", ".join(str(r.id) for r in rows)
            return 1, f"argus: apikey revoke: {id_or_prefix!r} names keys {ids}: revoke by id"
        row = rows[0]
        if row.revoked:
            return 0, f"key {row.id} ({row.name}, {row.prefix}) was already revoked"
        await repo.revoke(row)
    # a running server may have checked this key in the last minute: it trusts that check up to 60 s
    return 0, f"revoked key {row.id} ({row.name}, {row.prefix}); running servers refuse it within 60 s"


async def run_apikey(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "create":
        print(await create_key(settings, args.name))
        return 0
    if args.action == "list":
        print(await list_keys(settings))
        return 0
    status, message = await revoke_key(settings, args.key)
    print(message, file=sys.stderr if status else sys.stdout)
    return status
