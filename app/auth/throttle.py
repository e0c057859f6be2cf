"""FailedAuthThrottle: an address that sends too many bad API keys gets 429 for a while.

More than `limit` bad keys within `window_s` from one client address block that address's bad keys for
`block_s`: they are answered 429 (with Retry-After) instead of 401, and one warning is logged per block,
not one line per guess. Valid keys are checked first and never consult the throttle, so a client sharing
the address (NAT, a reverse proxy) with a guesser is never slowed. Memory is bounded: at most
`max_addresses` are tracked; idle ones are forgotten first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("argus.auth")


@dataclass(slots=True)
class _Address:
    window_start: float
    failures: int = 0
    blocked_until: float = 0.0


class FailedAuthThrottle:
    def __init__(
        self,
        limit: int = 20,
        window_s: float = 1.0,
        block_s: float = 60.0,
        max_addresses: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.block_s = block_s
        self.max_addresses = max_addresses
        self._clock = clock
        self._addresses: dict[str, _Address] = {}
        self.blocks = 0  # times an address was blocked (for health/metrics and tests)

    def blocked_for(self, address: str) -> float:
        """Seconds this address's bad keys are still refused with 429 (0: not blocked)."""
        entry = self._addresses.get(address)
        return max(0.0, entry.blocked_until - self._clock()) if entry else 0.0

    def failed(self, address: str) -> float:
        """Count one bad key from `address`; returns the seconds it is now blocked for (0: not blocked)."""
        now = self._clock()
        entry = self._addresses.get(address)
        if entry is None:
            self._make_room(now)
            entry = self._addresses[address] = _Address(now)
        if now < entry.blocked_until:
            return entry.blocked_until - now
        if now - entry.window_start >= self.window_s:
            entry.window_start, entry.failures = now, 0
        entry.failures += 1
        if entry.failures <= self.limit:
            return 0.0
        entry.blocked_until = now + self.block_s
        self.blocks += 1
        log.warning(
            "more than %d bad API keys within %.0f s from %s: its bad keys get 429 for %.0f s",
            self.limit,
            self.window_s,
            address,
            self.block_s,
        )
        return self.block_s

    def _make_room(self, now: float) -> None:
        if len(self._addresses) < self.max_addresses:
            return
        idle = [
            a
            for a, e in self._addresses.items()
            if e.blocked_until <= now and now - e.window_start >= self.window_s
        ]
        for address in idle:
            del self._addresses[address]
        while len(self._addresses) >= self.max_addresses:  # all busy: forget the oldest
            del self._addresses[next(iter(self._addresses))]
