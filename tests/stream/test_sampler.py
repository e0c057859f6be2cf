"""Sampler: paces at analysis_fps, skips (never queues) for a slow consumer, stops cleanly."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from app.config import Settings
from app.stream.drop_policy import DropCounter, DropReason, FrameGate
from app.stream.frame import Frame
from app.stream.sampler import Sampler
from app.stream.source import StreamSource
from tests.support.rtsp import RtspServer
from tests.support.waiting import eventually

IMAGE = np.zeros((4, 4, 3), np.uint8)


class ScriptedSource:
    """A source the test drives frame by frame on a fake clock (the GatedSource protocol)."""

    def __init__(self) -> None:
        self.drops = DropCounter()
        self.gate: FrameGate | None = None

    def set_gate(self, gate: FrameGate | None) -> None:
        self.gate = gate

    async def decode(self, frames: int, fps: float = 15.0) -> None:
        for seq in range(1, frames + 1):
            now = seq / fps
            await asyncio.sleep(0)  # the consumer runs between frames, as with a real capture thread
            if self.gate is not None and self.gate.wants(seq, now):
                self.gate.deliver(Frame(1, seq, now, IMAGE, 4, 4), now)
            await asyncio.sleep(0)


async def collect(sampler: Sampler, into: list[Frame]) -> None:
    async for frame in sampler:
        into.append(frame)


class TestPacing:
    @pytest.mark.parametrize(("fps", "expected"), [(0.2, 2), (1, 10), (5, 50), (30, 150)])
    async def test_yields_at_analysis_fps(self, fps: float, expected: int) -> None:
        # given a 15 FPS source and a consumer that is always ready
        source = ScriptedSource()
        sampler = Sampler(source, analysis_fps=fps)
        got: list[Frame] = []
        consumer = asyncio.create_task(collect(sampler, got))
        # when 10 s of frames are decoded
        await source.decode(150)
        sampler.close()
        await asyncio.wait_for(consumer, 2.0)
        # then the sampler yields analysis_fps frames a second, the rest counted not_sampled
        assert abs(len(got) - expected) <= 1
        assert sampler.frames_analyzed == len(got)
        assert source.drops.get(DropReason.NOT_SAMPLED) == 150 - len(got)

    def test_rate_outside_bounds_is_refused(self) -> None:
        for bad in (0.1, 31, 0):
            with pytest.raises(ValueError, match="analysis_fps"):
                Sampler(ScriptedSource(), analysis_fps=bad)

    async def test_every_nth(self) -> None:
        source = ScriptedSource()
        sampler = Sampler(source, analysis_fps=5, policy="every_nth", every_n=5)
        got: list[Frame] = []
        consumer = asyncio.create_task(collect(sampler, got))
        await source.decode(50)
        sampler.close()
        await consumer
        assert [f.seq for f in got] == [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]


class TestSlowConsumer:
    async def test_real_file_slow_consumer_gets_fresh_frames_not_a_backlog(
        self, settings: Settings, video_file: Path
    ) -> None:
        # given a real looping file source analysed at 15 FPS (every frame) by a slow consumer
        source = StreamSource(7, str(video_file), settings)
        sampler = Sampler(source, analysis_fps=15)
        source.start()
        try:
            stale = 0
            for _ in range(4):
                decoded_when_asked = source.status().frames_in
                frame = await asyncio.wait_for(anext(sampler), 10.0)
                # then every frame handed over was decoded after the consumer asked for it
                stale += frame.seq <= decoded_when_asked
                # the consumer is busy until the source has decoded 6 more frames
                await eventually(lambda f=frame: source.status().frames_in >= f.seq + 6, 10, interval=0.02)
            assert stale == 0
            # and what it could not take was counted as busy, never queued
            assert source.drops.get(DropReason.BUSY) >= 3
            assert sampler.gate.delivered == 4
        finally:
            sampler.close()
            await source.aclose()

    async def test_close_ends_iteration_and_unplugs_the_gate(self) -> None:
        source = ScriptedSource()
        sampler = Sampler(source)
        consumer = asyncio.create_task(collect(sampler, []))
        await asyncio.sleep(0)
        sampler.close()
        await asyncio.wait_for(consumer, 2.0)
        assert source.gate is None


class TestKeyframeBurstOnRtsp:
    async def test_calm_takes_keyframes_and_a_burst_follows_the_stream(
        self, rtsp_server: RtspServer, settings: Settings
    ) -> None:
        # given the fixture camera: x264 at 15 FPS with a keyframe every 30 frames (key-int-max = 2 x FPS)
        source = StreamSource(8, rtsp_server.url(1), settings)
        sampler = Sampler(source, analysis_fps=5, policy="keyframe_burst")
        source.start()
        try:
            # when calm, then the consumer is handed exactly one frame per GOP: FFmpeg's key flag works
            calm = [await asyncio.wait_for(anext(sampler), 15.0) for _ in range(3)]
            assert np.diff([f.seq for f in calm]).tolist() == [30, 30]
            # when a burst is flagged, frames follow at the analysis rate, keyframes or not
            sampler.set_burst(True)
            burst = [await asyncio.wait_for(anext(sampler), 10.0) for _ in range(6)]
            gaps = np.diff([calm[-1].seq] + [f.seq for f in burst]).tolist()
            assert max(gaps) < 30 and any(g % 30 for g in gaps)
            # and only the analysed frames were ever converted; the rest were decoded and counted
            status = source.status()
            assert status.frames_converted == 9
            drops = status.drops
            skipped = drops.get(DropReason.NOT_SAMPLED, 0) + drops.get(DropReason.NOT_DECODED, 0)
            assert skipped >= burst[-1].seq - 10
        finally:
            sampler.close()
            await source.aclose()
