"""API keys are random tokens; only their SHA-256 is stored, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import ApiKey, utcnow

KEY_PREFIX = "argus_"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(session: AsyncSession, name: str) -> str:
    key = generate_key()
    session.add(ApiKey(name=name, prefix=key[: len(KEY_PREFIX) + 4], key_hash=hash_key(key)))
    await session.flush()
    return key


class KeyVerifier:
    """Checks static keys (settings) and stored keys (api_keys table)."""

    def __init__(self, static_keys: list[str], sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._static = [hash_key(k) for k in static_keys]
        self._sessionmaker = sessionmaker

    async def verify(self, key: str | None) -> bool:
        if not key:
            return False
        digest = hash_key(key)
        if any(hmac.compare_digest(digest, h) for h in self._static):
            return True
        async with self._sessionmaker.begin() as session:
            row = (
                await session.execute(select(ApiKey.id).where(ApiKey.key_hash == digest, ~ApiKey.revoked))
            ).scalar_one_or_none()
            if row is None:
                return False
            await session.execute(update(ApiKey).where(ApiKey.id == row).values(last_used_at=utcnow()))
            return True
