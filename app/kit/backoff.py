"""Exponential backoff as a pure value: sources and webhooks keep one and ask it for the next delay."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial: float = 1.0
    factor: float = 2.0
    cap: float = 10.0
    jitter: float = 0.0  # fraction of the delay added at random, 0..jitter
    attempts: int = field(default=0, init=False)

    def next_delay(self) -> float:
        delay = min(self.cap, self.initial * self.factor**self.attempts)
        self.attempts += 1
        if self.jitter:
            delay += delay * self.jitter * random.random()
        return delay

    def reset(self) -> None:
        self.attempts = 0


def delay_for(attempt: int, initial: float, cap: float, factor: float = 2.0) -> float:
    """Delay before retry number `attempt` (0-based), without keeping state (outbox rows store attempts)."""
    return min(cap, initial * factor ** max(0, attempt))
