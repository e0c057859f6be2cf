"""ScoreNormalizer: a camera's raw scores -> z-scores against its own running mean and variance.

A busy street and an empty corridor give very different raw motion energy; measured against its own
history each gives a z-score that one threshold fits. The first `warmup` scores only build the
statistics (exact mean/variance, Welford). After that an exponential moving mean/variance follows slow
scene change (daylight, weather) over roughly 1/alpha frames. The caller stops feeding scores that
belong to an anomaly, so an hour-long episode does not teach the camera that it is normal; when a
change turns out to be permanent (lights left on, a moved camera) the caller calls `relearn()`, which
forgets the old scene and warms up again on the new one.
`min_std` keeps a perfectly still scene (std 0) from turning any flicker into an infinite z.
"""

from __future__ import annotations

import math


class ScoreNormalizer:
    def __init__(self, warmup: int = 25, alpha: float = 0.01, min_std: float = 0.1) -> None:
        if warmup < 2:
            raise ValueError("warmup must be >= 2")
        if not 0 < alpha < 1:
            raise ValueError("alpha must be in (0, 1)")
        self.warmup = warmup
        self.alpha = alpha
        self.min_std = min_std
        self.count = 0
        self.mean = 0.0
        self._m2 = 0.0  # Welford sum of squares during warm-up
        self.var = 0.0

    def relearn(self) -> None:
        """Forget the learned scene and warm up again from the next score (a permanent scene change)."""
        self.count = 0
        self.mean = self._m2 = self.var = 0.0

    @property
    def ready(self) -> bool:
        return self.count >= self.warmup

    @property
    def std(self) -> float:
        return max(math.sqrt(self.var), self.min_std)

    def z(self, score: float) -> float | None:
        """The z-score of `score`, or None while warming up."""
        if not self.ready:
            return None
        return (score - self.mean) / self.std

    def update(self, score: float) -> None:
        if not math.isfinite(score):
            return
        self.count += 1
        if self.count <= self.warmup:
            delta = score - self.mean
            self.mean += delta / self.count
            self._m2 += delta * (score - self.mean)
            self.var = self._m2 / self.count
            return
        delta = score - self.mean
        self.mean += self.alpha * delta
        self.var = (1 - self.alpha) * (self.var + self.alpha * delta * delta)

    def observe(self, score: float) -> float | None:
        """z of `score` against the history so far, then learn from it."""
        z = self.z(score)
        self.update(score)
        return z
