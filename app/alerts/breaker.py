"""CircuitBreaker per webhook: after `threshold` failures in a row, stop sending; probe again later.

closed -> (threshold failures) -> open -> (reset time passed) -> probing: one delivery goes out;
its success closes the breaker, its failure opens it again for twice as long (capped).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class BreakerState(StrEnum):
    closed = "closed"
    open = "open"  # refusing until probe_at
    probing = "probing"  # one probe in flight


@dataclass
class CircuitBreaker:
    threshold: int = 5
    reset_s: float = 5.0
    max_reset_s: float = 600.0
    clock: Callable[[], float] = time.monotonic
    state: BreakerState = field(default=BreakerState.closed, init=False)
    failures: int = field(default=0, init=False)
    probe_at: float = field(default=0.0, init=False)
    _open_for: float = field(default=0.0, init=False)

    def blocked(self) -> bool:
        """True while nothing may be sent (open and not yet time to probe, or a probe in flight)."""
        if self.state is BreakerState.open:
            return self.clock() < self.probe_at
        return self.state is BreakerState.probing

    def probe_due(self) -> bool:
        return self.state is BreakerState.open and self.clock() >= self.probe_at

    def begin_probe(self) -> None:
        self.state = BreakerState.probing

    def record_success(self) -> bool:
        """Returns True when this success ends an outage (the caller may resend what waited)."""
        recovered = self.state is not BreakerState.closed
        self.state = BreakerState.closed
        self.failures = 0
        self._open_for = 0.0
        return recovered

    def record_failure(self) -> None:
        self.failures += 1
        if self.state is BreakerState.probing:
            self._trip(min(self.max_reset_s, max(self.reset_s, self._open_for * 2)))
        elif self.state is BreakerState.closed and self.failures >= self.threshold:
            self._trip(self.reset_s)

    def _trip(self, open_for: float) -> None:
        self.state = BreakerState.open
        self._open_for = open_for
        self.probe_at = self.clock() + open_for
