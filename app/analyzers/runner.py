"""AnalyzerRunner: one frame through a camera's chain, independent analyzers concurrently, each on a budget.

An analyzer starts as soon as the analyzers it depends on are done, so a chain `vad`, `detector`,
`zones(detector)` runs vad and detector side by side and zones after detector. Each run gets
`budget_ms`; one that misses it is cancelled and skipped for this frame (reason `timeout`), and so are
the analyzers that depend on it (reason `dependency`). An analyzer that raises is skipped (`error`).
The pipeline keeps going either way: a late frame is worth less than the next one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.analyzers.base import Analyzer, Finding, Observation
from app.analyzers.tracing import NULL_TRACER, Tracer
from app.metrics import ANALYZER_SKIPPED
from app.stream.frame import Frame

log = logging.getLogger("argus.analyzers")


@dataclass(frozen=True, slots=True)
class FrameResult:
    observations: dict[str, Observation]
    skipped: dict[str, str] = field(default_factory=dict)  # analyzer -> timeout | error | dependency
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for obs in self.observations.values() for f in obs.findings)


class AnalyzerRunner:
    def __init__(
        self,
        analyzers: Sequence[Analyzer],
        *,
        budget_ms: float = 150.0,
        camera_id: int | str = "",
        tracer: Tracer | None = None,
    ) -> None:
        names = [a.name for a in analyzers]
        if len(set(names)) != len(names):
            raise ValueError(f"analyzer names repeat: {names}")
        for a in analyzers:
            missing = [d for d in a.depends if d not in names]
            if missing:
                raise ValueError(f"analyzer {a.name!r} depends on {missing}, not in the chain")
        self.analyzers = list(analyzers)
        self.budget_s = budget_ms / 1000
        self.camera = str(camera_id)
        self.tracer = tracer or NULL_TRACER
        self.drops: Counter[str] = Counter()  # reason -> analyzer runs skipped, for the camera's status
        self.skips: Counter[tuple[str, str]] = Counter()  # (analyzer, reason) -> count

    async def run(self, frame: Frame) -> FrameResult:
        started = time.perf_counter()
        pending = {a.name: a for a in self.analyzers}
        done: dict[str, Observation] = {}
        skipped: dict[str, str] = {}
        timings: dict[str, float] = {}
        running: dict[asyncio.Task[tuple[Observation, float]], str] = {}
        try:
            while pending or running:
                for name, a in list(pending.items()):
                    failed = [d for d in a.depends if d in skipped]
                    if failed:
                        del pending[name]
                        self._skip(frame, name, "dependency", skipped)
                    elif all(d in done for d in a.depends):
                        del pending[name]
                        if a.depends:
                            waited_ms = (time.perf_counter() - started) * 1000
                            self.tracer.sync_delay(frame.id, waited_ms, a.depends)
                        deps = {d: done[d] for d in a.depends}
                        task = asyncio.ensure_future(self._timed(a, frame, deps))
                        running[task] = name
                if not running:
                    break
                finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    name = running.pop(task)
                    try:
                        obs, ms = task.result()
                    except TimeoutError:
                        self._skip(frame, name, "timeout", skipped)
                        timings[name] = self.budget_s * 1000
                    except Exception:
                        log.warning("analyzer %s failed on frame %s", name, frame.id, exc_info=True)
                        self._skip(frame, name, "error", skipped)
                    else:
                        done[name] = obs
                        timings[name] = ms
                        self.tracer.timing(f"analyzer.{name}", frame.id, ms, len(running))
        finally:
            # the camera stopping cancels run(): stop the analyzers still busy with this frame, and take
            # their outcome so none ends as "Task exception was never retrieved"
            for task in running:
                task.cancel()
                task.add_done_callback(_consume)
        return FrameResult(done, skipped, timings)

    async def _timed(
        self, a: Analyzer, frame: Frame, deps: dict[str, Observation]
    ) -> tuple[Observation, float]:
        t0 = time.perf_counter()
        async with asyncio.timeout(self.budget_s):
            obs = await a.process(frame, deps)
        return obs, (time.perf_counter() - t0) * 1000

    def _skip(self, frame: Frame, name: str, reason: str, skipped: dict[str, str]) -> None:
        skipped[name] = reason
        self.drops[reason] += 1
        self.skips[(name, reason)] += 1
        ANALYZER_SKIPPED.labels(self.camera, name, reason).inc()
        if reason == "timeout":
            self.tracer.frame_drop([frame.id], "timeout", f"analyzer.{name}")

    def finish(self) -> tuple[Finding, ...]:
        """The camera is stopping: every analyzer's closing findings (each analyzer asked once)."""
        findings: list[Finding] = []
        for a in self.analyzers:
            try:
                findings.extend(a.finish())
            except Exception:
                log.exception("analyzer %s failed to finish", a.name)
        return tuple(findings)


def _consume(task: asyncio.Task[tuple[Observation, float]]) -> None:
    if not task.cancelled():
        task.exception()
