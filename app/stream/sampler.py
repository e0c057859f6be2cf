"""Sampler: async iterator of the frames a camera analyses, at its `analysis_fps` (0.2-30).

    sampler = Sampler(source, analysis_fps=5, policy="latest", every_n=3)
    source.start()
    async for frame in sampler:      # a slow body makes the source skip frames (counted), never queue
        await analyze(frame)
        sampler.set_burst(event_open)  # keyframe_burst: keyframes only while calm, analysis_fps in a burst
    ...
    sampler.close()                  # from anywhere: the loop above ends after its current frame

Pacing lives in the capture thread (`FrameGate`), where decode timestamps are known: the iterator only
says "ready for the next one" by awaiting. There is no queue: at most one frame is in flight.
"""

from __future__ import annotations

from typing import Protocol, Self

from app.kit.rate import RateMeter
from app.stream.drop_policy import DropCounter, DropPolicy, FrameGate
from app.stream.frame import Frame

MIN_ANALYSIS_FPS = 0.2
MAX_ANALYSIS_FPS = 30.0


class GatedSource(Protocol):
    """What a sampler needs from a source: its drop counter and a place to plug the gate in."""

    drops: DropCounter

    def set_gate(self, gate: FrameGate | None) -> None: ...


class Sampler:
    def __init__(
        self,
        source: GatedSource,
        analysis_fps: float = 5.0,
        policy: DropPolicy | str = DropPolicy.LATEST,
        every_n: int = 3,
    ) -> None:
        _check_fps(analysis_fps)
        self.gate = FrameGate(policy, analysis_fps, every_n, drops=source.drops)
        self.fps = RateMeter()
        self._source = source
        source.set_gate(self.gate)

    def configure(self, analysis_fps: float, policy: DropPolicy | str, every_n: int = 3) -> None:
        """Apply a new rate or policy to the running camera (no reconnect)."""
        _check_fps(analysis_fps)
        self.gate.configure(policy, analysis_fps, every_n)

    def set_burst(self, active: bool) -> None:
        """`keyframe_burst`: the camera is in a burst (an event is open), analyse at `analysis_fps`.

        Harmless under the other policies, so the pipeline may call it after every analysed frame.
        """
        self.gate.set_burst(active)

    @property
    def frames_analyzed(self) -> int:
        return self.fps.total

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Frame:
        frame = await self.gate.next()
        if frame is None:
            raise StopAsyncIteration
        self.fps.tick()
        return frame

    def close(self) -> None:
        """End iteration (thread-safe) and unplug the gate, so the source stops converting for analysis."""
        self.gate.close()
        self._source.set_gate(None)


def _check_fps(analysis_fps: float) -> None:
    if not MIN_ANALYSIS_FPS <= analysis_fps <= MAX_ANALYSIS_FPS:
        raise ValueError(f"analysis_fps must be between {MIN_ANALYSIS_FPS} and {MAX_ANALYSIS_FPS}")
