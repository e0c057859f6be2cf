"""API keys are random tokens; only their SHA-256 is stored, compared in constant time."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.tasks import spawn

log = logging.getLogger("argus.auth")
KEY_PREFIX = "argus_"
CACHE_TTL_S = 60.0  # a stored key, once verified, is trusted this long without asking the database
TOUCH_INTERVAL_S = 60.0  # last_used_at is written at most this often per key


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(session: AsyncSession, name: str) -> str:
    from app.auth.repository import ApiKeyRepository  # it builds keys with this module's functions

    return (await ApiKeyRepository(session).add(name))[1]


@dataclass
class _Verified:
    key_id: int
    at: float  # clock time of the database check


class KeyVerifier:
    """Checks static keys (settings) and stored keys (api_keys table).

    A stored key that passed is cached by its hash for `cache_ttl_s` (60 s): requests then cost no
    database round trip, and none writes on the request path. The price: revoking or deleting a key
    takes effect within that TTL, not at once. `last_used_at` is updated at most once per
    `touch_interval_s` per key, in a background task (on SQLite every write takes the one write lock
    that the event logger and the alert outbox need). Unknown keys are never cached, so a new key
    works at once. `clock` is injectable for tests.
    """

    def __init__(
        self,
        static_keys: list[str],
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        cache_ttl_s: float = CACHE_TTL_S,
        touch_interval_s: float = TOUCH_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._static = [hash_key(k) for k in static_keys]
        self._sessionmaker = sessionmaker
        self._ttl = cache_ttl_s
        self._touch_interval = touch_interval_s
        self._clock = clock
        self._cache: dict[str, _Verified] = {}
        self._touched: dict[int, float] = {}  # key id -> clock time of the last last_used_at write
        self._pending: set[asyncio.Task[None]] = set()

    async def verify(self, key: str | None) -> bool:
        if not key:
            return False
        digest = hash_key(key)
        if any(hmac.compare_digest(digest, h) for h in self._static):
            return True
        now = self._clock()
        hit = self._cache.get(digest)
        if hit is None or now - hit.at >= self._ttl:
            key_id = await self._lookup(digest)
            if key_id is None:
                self._cache.pop(digest, None)
                return False
            hit = self._cache[digest] = _Verified(key_id, now)
        self._touch_later(hit.key_id, now)
        return True

    def is_admin(self, key: str | None) -> bool:
        """Keys from ARGUS_API_KEYS, the server's own configuration, may manage the stored keys."""
        digest = hash_key(key or "")
        return bool(key) and any(hmac.compare_digest(digest, h) for h in self._static)

    def forget(self, key_id: int) -> None:
        """A key revoked through this server stops working at once (elsewhere: within the cache TTL)."""
        for digest in [d for d, hit in self._cache.items() if hit.key_id == key_id]:
            del self._cache[digest]

    async def _lookup(self, digest: str) -> int | None:
        from app.auth.repository import ApiKeyRepository  # it builds keys with this module's functions

        async with self._sessionmaker() as session:
            return await ApiKeyRepository(session).active_id(digest)

    def _touch_later(self, key_id: int, now: float) -> None:
        last = self._touched.get(key_id)
        if last is not None and now - last < self._touch_interval:
            return
        self._touched[key_id] = now
        task = spawn(self._touch(key_id), name=f"argus.auth.touch:{key_id}")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _touch(self, key_id: int) -> None:
        try:
            from app.auth.repository import ApiKeyRepository

            async with self._sessionmaker.begin() as session:
                await ApiKeyRepository(session).touch(key_id)
        except Exception as exc:  # a busy database must not fail anyone's request; retried next interval
            log.warning("could not record use of API key %s: %s", key_id, exc)

    async def drain(self) -> None:
        """Wait for the last_used_at writes in flight (tests; shutdown before the engine goes)."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def aclose(self) -> None:
        try:
            await asyncio.wait_for(self.drain(), 5.0)
        except TimeoutError:
            log.warning("API key last_used_at writes still pending at shutdown")
