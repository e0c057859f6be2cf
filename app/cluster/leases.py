"""Leases: acquire, renew and release camera leases, and the self-fencing clock of the ones held here.

Self-fencing: a lease expires at (the database's time of its last renew) + TTL. Each held lease keeps the
monotonic time its last successful renew was *sent* (never later than the database's), and the camera
is stopped once that is older than TTL - margin: a node cut off from the database, or too slow to
renew, has stopped the camera before any other node can acquire it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.cluster.repository import ClusterRepository

Clock = Callable[[], float]


@dataclass(slots=True)
class Held:
    token: int
    renewed_at: float  # monotonic: when the last successful renew (or the acquire) was sent


class LeaseBook:
    """The leases this node holds; no I/O (the member's tick and watchdog share it on one loop)."""

    def __init__(self, ttl_s: float, margin_s: float, clock: Clock = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.margin_s = margin_s
        self.clock = clock
        self._held: dict[int, Held] = {}

    def __contains__(self, camera_id: object) -> bool:
        return camera_id in self._held

    def ids(self) -> set[int]:
        return set(self._held)

    def tokens(self) -> dict[int, int]:
        return {cid: h.token for cid, h in self._held.items()}

    def fence(self, camera_id: int) -> int | None:
        held = self._held.get(camera_id)
        return held.token if held is not None else None

    def add(self, camera_id: int, token: int, sent_at: float) -> None:
        self._held[camera_id] = Held(token, sent_at)

    def renewed(self, camera_ids: Iterable[int], sent_at: float) -> None:
        for cid in camera_ids:
            if (held := self._held.get(cid)) is not None:
                held.renewed_at = sent_at

    def drop(self, camera_id: int, token: int | None = None) -> int | None:
        """Forget the lease (only if it still has `token`, when given); its token, or None."""
        held = self._held.get(camera_id)
        if held is None or (token is not None and held.token != token):
            return None
        del self._held[camera_id]
        return held.token

    def expiring(self) -> list[int]:
        """Held leases that may expire before the next renew could land: stop their cameras now."""
        limit = self.clock() - (self.ttl_s - self.margin_s)
        return sorted(cid for cid, h in self._held.items() if h.renewed_at < limit)


class Leases:
    """The lease statements of one node, each in its own short transaction."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], node: str, book: LeaseBook) -> None:
        self._sessionmaker = sessionmaker
        self.node = node
        self.book = book

    async def acquire(self, camera_id: int) -> int | None:
        sent = self.book.clock()
        async with self._sessionmaker.begin() as session:
            repo = ClusterRepository(session)
            token = await repo.acquire(camera_id, self.node, self.book.ttl_s)
            if token is not None:  # a former owner that died left them open: never open forever
                await repo.close_former_events(camera_id, token)
        if token is not None:
            self.book.add(camera_id, token, sent)
        return token

    async def renew(self, repo: ClusterRepository) -> tuple[set[int], dict[int, int]]:
        """(renewed, lost: id -> the token sent) inside the caller's transaction; the caller marks them
        renewed on commit."""
        tokens = self.book.tokens()
        renewed = await repo.renew(self.node, tokens, self.book.ttl_s)
        return renewed, {cid: token for cid, token in tokens.items() if cid not in renewed}

    async def release(self, camera_id: int, token: int) -> bool:
        async with self._sessionmaker.begin() as session:
            return await ClusterRepository(session).release(camera_id, self.node, token)
