"""AnalyzerRunner: dependency order, concurrency of independent analyzers, the time budget and skips."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from app.analyzers.base import Finding, Observation
from app.analyzers.runner import AnalyzerRunner
from app.analyzers.tracing import Tracer
from app.stream.frame import Frame


def frame(seq: int = 1) -> Frame:
    return Frame(9, seq, 1000.0 + seq, np.zeros((4, 4, 3), np.uint8), 4, 4)


class Probe:
    """Waits for `gate` (when given), then reports which observations it was handed."""

    def __init__(
        self, name: str, *depends: str, gate: asyncio.Event | None = None, fail: bool = False
    ) -> None:
        self.name, self.depends = name, depends
        self.gate, self.fail = gate, fail
        self.started = asyncio.Event()
        self.finished_calls = 0

    async def process(self, frame: Frame, deps: Mapping[str, Observation]) -> Observation:
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("boom")
        return Observation(self.name, data={"saw": sorted(deps)})

    def finish(self) -> tuple[Finding, ...]:
        self.finished_calls += 1
        return (Finding("test", self.name, "close", "low"),)


class Together(Probe):
    """Completes only once its partner has started: times out unless both run concurrently."""

    partner: Probe

    async def process(self, frame: Frame, deps: Mapping[str, Observation]) -> Observation:
        self.started.set()
        await self.partner.started.wait()
        return Observation(self.name)


class TestRunner:
    async def test_dependents_see_their_dependencies_observations(self) -> None:
        runner = AnalyzerRunner([Probe("a"), Probe("b", "a"), Probe("c", "a", "b")])
        result = await runner.run(frame())
        assert result.skipped == {}
        assert result.observations["b"].data["saw"] == ["a"]
        assert result.observations["c"].data["saw"] == ["a", "b"]

    async def test_independent_analyzers_run_concurrently(self) -> None:
        first, second = Together("first"), Together("second")
        first.partner, second.partner = second, first
        runner = AnalyzerRunner([first, second], budget_ms=5_000)
        result = await asyncio.wait_for(runner.run(frame()), 10)
        assert set(result.observations) == {"first", "second"} and result.skipped == {}

    async def test_a_late_analyzer_is_skipped_as_timeout_with_its_dependents(self, tmp_path: Path) -> None:
        never = asyncio.Event()
        tracer = Tracer("minimal", tmp_path)
        runner = AnalyzerRunner(
            [Probe("fast"), Probe("slow", gate=never), Probe("after_slow", "slow")],
            budget_ms=30,
            camera_id=9,
            tracer=tracer,
        )
        result = await runner.run(frame(5))
        assert set(result.observations) == {"fast"}
        assert result.skipped == {"slow": "timeout", "after_slow": "dependency"}
        assert runner.drops["timeout"] == 1 and runner.skips[("slow", "timeout")] == 1
        tracer.close()
        records = [json.loads(line) for line in tracer.path.read_text().splitlines()]  # type: ignore[union-attr]
        assert records[0]["type"] == "frame_drop" and records[0]["reason"] == "timeout"
        assert records[0]["ids"] == ["9:5"] and records[0]["component"] == "analyzer.slow"

        # the next frame is unaffected: the runner holds no leftovers of the skipped run
        never.set()
        again = await runner.run(frame(6))
        assert again.skipped == {} and set(again.observations) == {"fast", "slow", "after_slow"}

    async def test_an_analyzer_that_raises_is_skipped_as_error(self) -> None:
        runner = AnalyzerRunner([Probe("ok"), Probe("bad", fail=True), Probe("needs_bad", "bad")])
        result = await runner.run(frame())
        assert set(result.observations) == {"ok"}
        assert result.skipped == {"bad": "error", "needs_bad": "dependency"}

    async def test_finish_asks_every_analyzer_once(self) -> None:
        probes = [Probe("a"), Probe("b", "a")]
        findings = AnalyzerRunner(probes).finish()
        assert [f.key for f in findings] == ["a", "b"]
        assert [p.finished_calls for p in probes] == [1, 1]

    def test_a_chain_with_a_missing_dependency_is_refused(self) -> None:
        with pytest.raises(ValueError, match="depends on"):
            AnalyzerRunner([Probe("b", "a")])


class TestTracer:
    async def test_levels_and_records(self, tmp_path: Path) -> None:
        off = Tracer("off")
        off.timing("analyzer.vad", "1:1", 3.0)
        assert off.path is None  # nothing opened when off

        runner = AnalyzerRunner([Probe("a"), Probe("b", "a")], tracer=(tracer := Tracer("verbose", tmp_path)))
        await runner.run(frame(3))
        tracer.close()
        records = [json.loads(line) for line in tracer.path.read_text().splitlines()]  # type: ignore[union-attr]
        kinds = [(r["type"], r.get("component")) for r in records]
        assert ("timing", "analyzer.a") in kinds and ("timing", "analyzer.b") in kinds
        delay = next(r for r in records if r["type"] == "sync_delay")
        assert delay["frame_id"] == "9:3" and delay["waiting_for"] == ["a"] and delay["delay_ms"] >= 0

        normal = Tracer("normal", tmp_path / "n")
        normal.sync_delay("1:1", 1.0, ["a"])
        assert normal.path is None  # sync_delay is verbose-only


class TestCancelled:
    async def test_a_camera_stopping_mid_frame_stops_the_busy_analyzers(self) -> None:
        # given an analyzer still busy with a frame when the camera stops
        busy = Probe("slow", gate=asyncio.Event())
        runner = AnalyzerRunner([busy], budget_ms=60_000)
        run = asyncio.ensure_future(runner.run(frame()))
        await busy.started.wait()
        inner = [t for t in asyncio.all_tasks() if t is not run and "_timed" in repr(t.get_coro())]

        # when the frame's run is cancelled
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

        # then the analyzer's task is cancelled too (not left to time out with nobody to take its error)
        assert len(inner) == 1
        await asyncio.sleep(0)
        assert inner[0].cancelled()
