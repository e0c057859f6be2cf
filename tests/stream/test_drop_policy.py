"""FrameGate: which decoded frames are converted, and the exact accounting of the others (fake clock)."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import numpy as np
import pytest

from app.stream.drop_policy import KEYFRAME_MAX_GAP_S, DropCounter, DropPolicy, DropReason, FrameGate
from app.stream.frame import Frame

IMAGE = np.zeros((4, 4, 3), np.uint8)


def frame(seq: int, at: float) -> Frame:
    return Frame(1, seq, at, IMAGE, 4, 4)


class Driver:
    """Plays the capture thread with a fake clock, and a consumer that is busy `work_s` per frame."""

    def __init__(self, gate: FrameGate, work_s: float = 0.0) -> None:
        self.gate = gate
        self.work_s = work_s
        self.received: list[Frame] = []
        self.asked_at: list[int] = []  # frames decoded when each request was made
        self._task: asyncio.Task[Frame | None] | None = None
        self._busy_until = float("-inf")

    async def play(
        self, frames: int, fps: float = 15.0, start: float = 100.0, gop: int | None = None, first: int = 1
    ) -> None:
        """Decode `frames` frames numbered from `first`; with `gop`, every gop-th one (seq 1, 1+gop...) is a
        keyframe; without, the source cannot tell (key=None)."""
        for seq in range(first, first + frames):
            now = start + (seq - first) / fps
            key = None if gop is None else seq % gop == 1 % gop
            if self._task is None and now >= self._busy_until:
                self.asked_at.append(seq - 1)
                self._task = asyncio.create_task(self.gate.next())
                await asyncio.sleep(0)  # let the consumer arm the gate
            if self.gate.wants(seq, now, key):
                self.gate.deliver(frame(seq, now), now)
                assert self._task is not None
                got = await self._task
                assert got is not None
                self.received.append(got)
                self._task = None
                self._busy_until = now + self.work_s
        if self._task is not None:  # stop waiting, leaving the gate usable
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def seqs(self) -> list[int]:
        return [f.seq for f in self.received]


def accounted(gate: FrameGate, driver: Driver) -> int:
    return len(driver.received) + gate.drops.total


class TestLatest:
    async def test_ready_consumer_gets_analysis_fps(self) -> None:
        # given a 15 FPS stream analysed at 5 FPS by a consumer that is always ready
        gate = FrameGate(DropPolicy.LATEST, analysis_fps=5)
        driver = Driver(gate)
        # when 6 s of frames are decoded
        await driver.play(90)
        # then one frame in three is analysed, the rest are not_sampled (never converted), none busy
        assert len(driver.received) in (29, 30, 31)
        assert gate.drops.get(DropReason.NOT_SAMPLED) == 90 - len(driver.received)
        assert gate.drops.get(DropReason.BUSY) == 0
        gaps = np.diff(driver.seqs())
        assert set(gaps.tolist()) <= {2, 3, 4}

    async def test_slow_consumer_gets_the_newest_frame_and_busy_is_counted(self) -> None:
        # given a consumer that needs 1 s per frame, far longer than the 0.2 s analysis period
        gate = FrameGate(DropPolicy.LATEST, analysis_fps=5)
        driver = Driver(gate, work_s=1.0)
        # when 10 s of frames are decoded
        await driver.play(150)
        # then about one frame a second is analysed, each decoded after the consumer asked (no backlog)
        assert 8 <= len(driver.received) <= 11
        assert all(f.seq == asked + 1 for f, asked in zip(driver.received, driver.asked_at, strict=False))
        # and the missed analysis ticks are counted once each, as busy
        assert 30 <= gate.drops.get(DropReason.BUSY) <= 45
        assert accounted(gate, driver) == 150

    async def test_low_rate(self) -> None:
        gate = FrameGate(DropPolicy.LATEST, analysis_fps=0.2)
        driver = Driver(gate)
        await driver.play(150)  # 10 s
        assert len(driver.received) == 2
        assert accounted(gate, driver) == 150

    async def test_rate_above_stream_fps_takes_every_frame(self) -> None:
        gate = FrameGate(DropPolicy.LATEST, analysis_fps=30)
        driver = Driver(gate)
        await driver.play(45)
        assert driver.seqs() == list(range(1, 46))
        assert gate.drops.total == 0

    async def test_configure_changes_rate_without_new_gate(self) -> None:
        gate = FrameGate(DropPolicy.LATEST, analysis_fps=1)
        driver = Driver(gate)
        await driver.play(30)
        slow = len(driver.received)
        gate.configure(DropPolicy.LATEST, analysis_fps=15)
        driver.received.clear()
        await driver.play(30, start=200.0)
        assert slow == 2
        assert len(driver.received) >= 29


class TestEveryNth:
    async def test_analyses_exactly_every_nth_decoded_frame(self) -> None:
        gate = FrameGate(DropPolicy.EVERY_NTH, analysis_fps=5, every_n=4)
        driver = Driver(gate)
        await driver.play(40)
        assert driver.seqs() == [4, 8, 12, 16, 20, 24, 28, 32, 36, 40]
        assert gate.drops.snapshot() == {"not_sampled": 30}

    async def test_slow_consumer_skips_selected_frames_as_busy(self) -> None:
        gate = FrameGate(DropPolicy.EVERY_NTH, every_n=3)
        driver = Driver(gate, work_s=0.5)  # the consumer misses roughly every other selected frame
        await driver.play(60)
        assert all(seq % 3 == 0 for seq in driver.seqs())
        assert gate.drops.get(DropReason.BUSY) == 20 - len(driver.received)
        assert gate.drops.get(DropReason.NOT_SAMPLED) == 40


class TestKeyframeBurst:
    async def test_calm_analyses_keyframes_only(self) -> None:
        # given a 15 FPS camera with a keyframe every 30 frames (2 s), analysed at up to 5 FPS
        gate = FrameGate(DropPolicy.KEYFRAME_BURST, analysis_fps=5)
        driver = Driver(gate)
        await driver.play(150, gop=30)  # 10 s
        # then exactly the keyframes were converted; the P-frames were never touched
        assert driver.seqs() == [1, 31, 61, 91, 121]
        assert gate.drops.snapshot() == {"not_sampled": 145}

    async def test_a_keyframe_missed_while_busy_is_counted(self) -> None:
        gate = FrameGate(DropPolicy.KEYFRAME_BURST, analysis_fps=5)
        driver = Driver(gate, work_s=2.5)  # longer than a GOP: every other keyframe finds it busy
        await driver.play(180, gop=30)
        assert driver.seqs() == [1, 61, 121]
        assert gate.drops.get(DropReason.BUSY) == 3
        assert accounted(gate, driver) == 180

    async def test_all_keyframes_stream_is_capped_at_analysis_fps(self) -> None:
        # given an MJPEG-like stream where every frame is a keyframe
        gate = FrameGate(DropPolicy.KEYFRAME_BURST, analysis_fps=5)
        driver = Driver(gate)
        await driver.play(90, gop=1)
        # then it is analysed like `latest`: 5 FPS, not 15
        assert 29 <= len(driver.received) <= 31
        assert accounted(gate, driver) == 90

    async def test_a_burst_is_followed_at_analysis_fps_from_its_newest_frame(self) -> None:
        gate = FrameGate(DropPolicy.KEYFRAME_BURST, analysis_fps=5)
        driver = Driver(gate)
        await driver.play(45, gop=30)  # calm: keyframes 1 and 31
        assert driver.seqs() == [1, 31]
        # when the pipeline flags a burst (an event opened) at frame 45
        gate.set_burst(True)
        assert gate.burst
        driver.received.clear()
        await driver.play(30, gop=30, first=46, start=103.0)
        # then the very next frame is analysed and then one in three, keyframe or not, like `latest`
        assert driver.seqs()[0] == 46
        assert set(np.diff(driver.seqs()).tolist()) <= {2, 3, 4} and len(driver.received) >= 9
        # and when the burst ends, back to keyframes only
        gate.set_burst(False)
        driver.received.clear()
        await driver.play(60, gop=30, first=76, start=105.0)
        assert driver.seqs() == [91, 121]

    async def test_without_keyframe_information_a_frame_per_gap_is_still_analysed(self) -> None:
        # given a source that cannot tell keyframes (key=None), 25 s of frames
        gate = FrameGate(DropPolicy.KEYFRAME_BURST, analysis_fps=5)
        driver = Driver(gate)
        await driver.play(375)
        # then the camera is not left unanalysed: one frame every KEYFRAME_MAX_GAP_S
        gaps = np.diff([f.captured_at for f in driver.received])
        assert len(driver.received) == 2 and all(g == pytest.approx(KEYFRAME_MAX_GAP_S) for g in gaps)
        assert driver.received[0].captured_at == pytest.approx(100.0 + KEYFRAME_MAX_GAP_S)
        assert accounted(gate, driver) == 375

    async def test_burst_flag_is_harmless_under_other_policies(self) -> None:
        gate = FrameGate(DropPolicy.EVERY_NTH, every_n=4)
        gate.set_burst(True)
        driver = Driver(gate)
        await driver.play(20, gop=30)
        assert driver.seqs() == [4, 8, 12, 16, 20]
        assert not FrameGate().needs_keyframes and FrameGate("keyframe_burst").needs_keyframes


class TestHandOff:
    async def test_close_wakes_the_waiting_consumer(self) -> None:
        gate = FrameGate()
        waiter = asyncio.create_task(gate.next())
        await asyncio.sleep(0)
        assert gate.waiting
        threading.Thread(target=gate.close).start()  # close from another thread, like a stopping source
        assert await asyncio.wait_for(waiter, 2.0) is None
        assert await gate.next() is None

    def test_frames_before_the_first_request_are_not_sampled(self) -> None:
        gate = FrameGate()
        assert not any(gate.wants(seq, seq / 15) for seq in range(1, 31))
        assert gate.drops.snapshot() == {"not_sampled": 30}

    async def test_frame_without_consumer_is_counted_superseded(self) -> None:
        gate = FrameGate()
        gate.deliver(frame(1, 1.0), 1.0)
        assert gate.drops.snapshot() == {"superseded": 1}

    async def test_only_one_waiter(self) -> None:
        gate = FrameGate()
        first = asyncio.create_task(gate.next())
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError):
            await gate.next()
        gate.close()
        assert await first is None

    def test_bad_configuration_is_refused(self) -> None:
        with pytest.raises(ValueError):
            FrameGate(analysis_fps=0)
        with pytest.raises(ValueError):
            FrameGate(DropPolicy.EVERY_NTH, every_n=0)
        with pytest.raises(ValueError):
            FrameGate("keyframes")


class TestDropCounter:
    def test_counts_from_many_threads_are_exact(self) -> None:
        counter = DropCounter()

        def add() -> None:
            for _ in range(10_000):
                counter.add(DropReason.BUSY)

        threads = [threading.Thread(target=add) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert counter.get("busy") == 40_000
        assert counter.total == 40_000

    def test_labelled_counter_feeds_prometheus(self) -> None:
        from app.metrics import FRAMES_DROPPED

        counter = DropCounter("drop-test")
        counter.add(DropReason.NOT_SAMPLED, 3)
        assert FRAMES_DROPPED.labels("drop-test", "not_sampled")._value.get() == 3
