"""Batch-size calibration: measure what batching buys for one model on this machine, pick the batch cap.

Whether a bigger batch pays depends on the model and the hardware. A tiny graph is all per-run overhead,
so batch 16 costs barely more than batch 1; a convolutional detector on a small CPU runs the images of a
batch one after another, and past a couple of images its activations fall out of cache, so each item
gets slower as the batch grows (and every item of a batch waits for the whole run). So at load time the
pool times batches of 1, 2, 4, ... up to its cap on a synthetic item and keeps, as the batcher's
`max_batch`, the largest batch whose per-item time is within `tolerance` of the best one seen (bigger
batches at equal per-item cost also amortise the per-run Python and thread hand-off the timings miss).

Robust on a shared, loaded machine: each candidate size is timed in pairs against the best size so far,
back to back, and judged on the median of the per-pair ratios (confirmed by the medians of all
samples), so a load spike slows both sides of a pair instead of flipping the verdict; cheap runs get
more pairs (up to `max_reps` within about `step_s`), since one preemption can multiply a
sub-millisecond run. It stops at the first size clearly worse per item than the best (past the knee),
at a size whose run exceeds `max_run_ms` (its frames would miss their time budget), or when the next
step would overrun `budget_s`.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from app.inference.manifest import Dim
from app.inference.model import OnnxModel

log = logging.getLogger("argus.inference")

RunBatch = Callable[[Sequence[np.ndarray]], object]
Reason = Literal["cap", "knee", "latency", "budget", "disabled", "fixed_batch", "dynamic_shape"]


@dataclass(frozen=True, slots=True)
class CurvePoint:
    batch: int
    run_ms: float  # median run time of one batch of this size
    samples: int

    @property
    def per_item_ms(self) -> float:
        return self.run_ms / self.batch

    def to_json(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "run_ms": round(self.run_ms, 3),
            "per_item_ms": round(self.per_item_ms, 3),
            "items_per_s": round(1000 / self.per_item_ms, 1) if self.run_ms > 0 else None,
            "samples": self.samples,
        }


@dataclass(frozen=True, slots=True)
class Calibration:
    max_batch: int  # what the batcher uses
    cap: int  # the most it could have been (manifest max_batch or the pool's)
    reason: Reason  # why the sweep stopped where it did
    curve: tuple[CurvePoint, ...] = ()
    took_ms: float = 0.0

    @classmethod
    def fixed(cls, max_batch: int, reason: Reason) -> Calibration:
        """No measurement: calibration off, a graph pinned to one batch size, or no static item shape."""
        return cls(max_batch, max_batch, reason)

    def to_json(self) -> dict[str, Any]:
        return {
            "max_batch": self.max_batch,
            "cap": self.cap,
            "reason": self.reason,
            "took_ms": round(self.took_ms, 1),
            "curve": [p.to_json() for p in self.curve],
        }

    def describe(self) -> str:
        points = ", ".join(f"{p.batch}: {p.per_item_ms:.3g}" for p in self.curve)
        return f"max_batch {self.max_batch} of {self.cap} ({self.reason}); ms/item by batch {{{points}}}"


def candidate_sizes(cap: int) -> list[int]:
    """1, 2, 4, ... below `cap`, then `cap` itself."""
    sizes = [1]
    while sizes[-1] * 2 < cap:
        sizes.append(sizes[-1] * 2)
    if cap > 1:
        sizes.append(cap)
    return sizes


def synthetic_item(item_shape: Sequence[Dim], dtype: np.dtype[Any] | str) -> np.ndarray | None:
    """A deterministic item of the model's input (no batch dim); None when a dim is dynamic."""
    if any(d is None for d in item_shape):
        return None
    shape = tuple(int(d) for d in item_shape)  # type: ignore[arg-type]
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return np.random.default_rng(0).random(shape).astype(dt)
    return np.zeros(shape, dt)


def calibrate(
    run: RunBatch,
    item: np.ndarray,
    cap: int,
    *,
    tolerance: float = 0.1,
    reps: int = 3,
    max_reps: int = 15,
    step_s: float = 0.05,
    budget_s: float = 1.5,
    max_run_ms: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Calibration:
    """Time `run` on batches of `item` and choose the batch cap (see the module docstring).

    `run` takes a list of items, as `OnnxModel.run_batch` does; it is called from this thread only, so
    call this off the event loop. `budget_s` bounds the whole sweep (a step that would overrun it is
    not started), so a slow model is never held up for long at load.
    """
    started = clock()
    samples: dict[int, list[float]] = {}

    def timed(b: int) -> float:
        items = [item] * b
        t0 = clock()
        run(items)
        return clock() - t0

    def median(b: int) -> float:
        return statistics.median(samples[b])

    warm = timed(1)  # warm-up: first runs allocate and may compile
    # a model slow enough to blow the budget at batch 1 gets fewer samples there, and no sweep
    first_reps = max(1, min(reps, int((budget_s - (clock() - started)) / max(warm, 1e-9))))
    if warm * max_reps < step_s:
        first_reps = max_reps
    samples[1] = [timed(1) for _ in range(first_reps)]
    best = chosen = last = 1
    reason: Reason = "cap"
    for b in candidate_sizes(cap)[1:]:
        predicted = median(last) * b / last  # linear: no gain from batching, the worst case that matters
        step = (1 + reps) * predicted + reps * median(best)  # extra pairs only where they are cheap
        if clock() - started + step > budget_s:
            reason = "budget"
            break
        pairs = max(reps, min(max_reps, int(step_s / max(timed(b) + median(best), 1e-9))))
        ratios: list[float] = []
        samples[b] = []
        for i in range(pairs):
            # alternate which goes first, so neither side always runs on the other's warm caches
            if i % 2 == 0:
                t_best, t_b = timed(best), timed(b)
            else:
                t_b, t_best = timed(b), timed(best)
            samples[best].append(t_best)
            samples[b].append(t_b)
            ratios.append((t_b / b) / max(t_best / best, 1e-9))
        last = b
        if max_run_ms is not None and median(b) * 1000 > max_run_ms:
            reason = "latency"
            break
        ratio = statistics.median(ratios)
        # past the knee only when the pairs and the medians of all samples agree: one alone is noise
        if ratio > 1 + tolerance and median(b) / b > median(best) / best * (1 + tolerance):
            reason = "knee"
            break
        chosen = b
        if ratio < 1:
            best = b
    curve = tuple(CurvePoint(b, median(b) * 1000, len(samples[b])) for b in sorted(samples))
    return Calibration(chosen, cap, reason, curve, (clock() - started) * 1000)


def calibrate_model(
    model: OnnxModel,
    cap: int,
    *,
    enabled: bool = True,
    budget_s: float = 1.5,
    max_run_ms: float | None = None,
) -> Calibration:
    """The batch cap for a freshly loaded model: measured when it can be, else `cap` (blocking)."""
    if model.fixed_batch is not None:
        return Calibration.fixed(model.fixed_batch, "fixed_batch")
    item = synthetic_item(model.input.shape[1:], model.dtype)
    if item is None:
        return Calibration.fixed(cap, "dynamic_shape")
    if not enabled:
        model.run_batch([item])  # still warm up: the first run allocates and may compile
        return Calibration.fixed(cap, "disabled")
    result = calibrate(model.run_batch, item, cap, budget_s=budget_s, max_run_ms=max_run_ms)
    log.info("model %s calibrated in %.0f ms: %s", model.spec.name, result.took_ms, result.describe())
    return result
