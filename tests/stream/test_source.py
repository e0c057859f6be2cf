"""StreamSource against a real RTSP server and real files: streaming, on-demand conversion, outages."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from pathlib import Path

import pytest

from app.config import Settings
from app.stream.drop_policy import DropReason
from app.stream.frame import Frame
from app.stream.sampler import Sampler
from app.stream.source import SourceState, StreamSource, Timeline, fit_width, source_kind
from tests.stream.conftest import MjpegServer
from tests.support.rtsp import RtspServer
from tests.support.server import free_port
from tests.support.waiting import eventually

SECRET = "s3cr3t-pw"


def capture_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("argus.capture:")]


def with_password(url: str) -> str:
    return url.replace("rtsp://", f"rtsp://admin:{SECRET}@")


class TestRtsp:
    async def test_streams_frames_at_the_working_size_converting_only_on_demand(
        self, rtsp_server: RtspServer, settings: Settings
    ) -> None:
        # given a 640x360 15 FPS camera analysed at 5 FPS
        source = StreamSource(1, rtsp_server.url(1), settings, decode="all")
        sampler = Sampler(source, analysis_fps=5)
        states: list[SourceState] = []
        source._on_state = states.append
        source.start()
        try:
            # when 12 analysis frames have been taken
            frames: list[Frame] = []
            async for frame in sampler:
                frames.append(frame)
                if len(frames) == 12:
                    break
            status = source.status()
            # then they come at the analysis width with the stream's own size recorded
            assert frames[0].image.shape == (180, 320, 3)
            assert (frames[0].source_width, frames[0].source_height) == (640, 360)
            assert status.state is SourceState.STREAMING
            assert states[:2] == [SourceState.CONNECTING, SourceState.STREAMING]
            # and only the analysed frames were converted: the others were decoded and skipped
            assert status.frames_converted == 12
            assert status.frames_in >= 2.5 * 12
            assert status.drops[DropReason.NOT_SAMPLED] >= status.frames_in - 13
            assert status.last_frame_at is not None
            assert status.last_error is None
        finally:
            sampler.close()
            await source.aclose()
        assert source.state is SourceState.STOPPED

    async def test_fps_in_follows_the_stream_rate(self, rtsp_server: RtspServer, settings: Settings) -> None:
        source = StreamSource(2, rtsp_server.url(2), settings)
        source.start()
        try:
            # RateMeter's window is 5 s: wait until it is full of frames
            await eventually(lambda: source.status().frames_in >= 90, 20, what="90 frames")
            fps = source.status().fps_in
            assert 10 <= fps <= 20, fps
            # nobody asked for pixels: only a keyframe a second or so keeps the snapshot fresh
            assert source.status().frames_converted <= source.status().frames_in / 10
        finally:
            await source.aclose()

    async def test_live_demand_converts_at_live_width_and_stops_when_unwatched(
        self, rtsp_server: RtspServer, settings: Settings
    ) -> None:
        source = StreamSource(3, rtsp_server.url(1), settings.model_copy(update={"live_max_width": 480}))
        source.start()
        try:
            await eventually(lambda: source.state is SourceState.STREAMING, 15, what="streaming")
            unwatched = source.latest()  # a keyframe at the analysis width, for snapshots
            assert unwatched is None or unwatched.image.shape[1] == settings.analysis_width
            source.set_live_demand(5.0)
            converted = source.frames_converted
            await eventually(lambda: source.frames_converted >= converted + 3, 10, what="live conversions")
            latest = source.latest()
            assert latest is not None and latest.image.shape == (270, 480, 3)
            source.set_live_demand(0)
            converted = source.frames_converted
            frames_in = source.status().frames_in
            await eventually(lambda: source.status().frames_in >= frames_in + 15, 10, what="15 more frames")
            assert source.frames_converted <= converted + 1
        finally:
            await source.aclose()

    async def test_reconnects_after_server_restart(
        self, rtsp_server: RtspServer, fast_settings: Settings
    ) -> None:
        source = StreamSource(4, rtsp_server.url(1), fast_settings)
        source.start()
        try:
            await eventually(lambda: source.state is SourceState.STREAMING, 15, what="streaming")
            # when the camera goes away
            rtsp_server.stop()
            await eventually(
                lambda: source.state in (SourceState.RECONNECTING, SourceState.OFFLINE), 10, what="outage"
            )
            before = source.status().frames_in
            # and comes back on the same port
            rtsp_server.start()
            # then the source streams again within the 15 s promise
            await eventually(lambda: source.status().frames_in > before + 5, 15, what="frames after restart")
            status = source.status()
            assert status.state is SourceState.STREAMING
            assert status.reconnects >= 1
            assert status.last_error is None
        finally:
            await source.aclose()

    async def test_hung_server_is_noticed_by_the_stale_watchdog(
        self, rtsp_server: RtspServer, fast_settings: Settings
    ) -> None:
        settings = fast_settings.model_copy(update={"read_timeout_s": 1.0, "stale_frame_s": 1.5})
        source = StreamSource(5, rtsp_server.url(1), settings)
        source.start()
        assert rtsp_server.proc is not None
        pid = rtsp_server.proc.pid
        try:
            await eventually(lambda: source.state is SourceState.STREAMING, 15, what="streaming")
            os.kill(pid, signal.SIGSTOP)  # socket stays open, nothing is sent
            try:
                await eventually(
                    lambda: source.state is not SourceState.STREAMING, 15, what="stale detection"
                )
            finally:
                os.kill(pid, signal.SIGCONT)
            assert source.status().last_error is not None
            await eventually(lambda: source.state is SourceState.STREAMING, 20, what="streaming again")
        finally:
            await source.aclose()

    async def test_unreachable_camera_goes_offline_with_masked_error(
        self, fast_settings: Settings, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="argus")
        url = f"rtsp://admin:{SECRET}@127.0.0.1:{free_port()}/cam1"
        settings = fast_settings.model_copy(
            update={"reconnect_initial_delay": 0.05, "reconnect_max_delay": 0.1}
        )
        states: list[SourceState] = []
        source = StreamSource(6, url, settings, on_state=states.append)
        source.start()
        try:
            await eventually(lambda: source.state is SourceState.OFFLINE, 15, what="offline")
            status = source.status()
            assert states[:3] == [SourceState.CONNECTING, SourceState.RECONNECTING, SourceState.OFFLINE]
            assert status.reconnects >= 2
            assert status.last_error is not None
            assert "admin:****@" in status.last_error
            assert SECRET not in repr(status)
            assert source.masked_url == f"rtsp://admin:****@127.0.0.1:{url.split(':')[3]}"
        finally:
            await source.aclose()
        assert caplog.records, "state changes are logged"
        assert all(SECRET not in r.getMessage() for r in caplog.records)
        assert capture_threads() == []

    async def test_stop_leaves_no_capture_thread(self, rtsp_server: RtspServer, settings: Settings) -> None:
        urls = [with_password(rtsp_server.url(1 + i % 2)) for i in range(3)]
        sources = [StreamSource(10 + i, url, settings) for i, url in enumerate(urls)]
        for s in sources:
            s.start()
        await eventually(lambda: all(s.state is SourceState.STREAMING for s in sources), 20, what="streaming")
        assert len(capture_threads()) == 3
        await asyncio.gather(*(s.aclose() for s in sources))
        assert capture_threads() == []
        assert all(s.state is SourceState.STOPPED for s in sources)
        assert all(SECRET not in repr(s.status()) for s in sources)

    async def test_stop_does_not_wait_out_the_backoff(self, fast_settings: Settings) -> None:
        settings = fast_settings.model_copy(
            update={"reconnect_initial_delay": 60.0, "reconnect_max_delay": 60.0}
        )
        source = StreamSource(20, f"rtsp://127.0.0.1:{free_port()}/x", settings)
        source.start()
        await eventually(lambda: source.state is SourceState.RECONNECTING, 10, what="backoff sleep")
        stopper = asyncio.create_task(source.aclose())
        await asyncio.wait_for(stopper, 5.0)  # far less than the 60 s backoff
        assert capture_threads() == []


class TestFile:
    async def test_file_source_loops_forever(self, video_file: Path, settings: Settings) -> None:
        # given a 1-s, 15-frame file
        source = StreamSource(30, str(video_file), settings)
        sampler = Sampler(source, analysis_fps=30)  # every frame, to see the loop in the sequence
        source.start()
        try:
            seen: list[Frame] = []
            async for frame in sampler:
                seen.append(frame)
                if frame.seq >= 40:
                    break
            # then it played past its end without a reconnect, every frame at its own size
            assert source.state is SourceState.STREAMING
            assert source.status().reconnects == 0
            assert seen[-1].image.shape == (180, 320, 3)
        finally:
            sampler.close()
            await source.aclose()

    async def test_missing_file_is_refused(self, tmp_path: Path, settings: Settings) -> None:
        with pytest.raises(ValueError, match="file"):
            StreamSource(31, str(tmp_path / "nope.mp4"), settings)


class TestHttpMjpeg:
    async def test_mjpeg_camera_streams(self, mjpeg_server: MjpegServer, settings: Settings) -> None:
        source = StreamSource(40, mjpeg_server.url, settings)
        sampler = Sampler(source, analysis_fps=5)
        source.start()
        try:
            frame = await asyncio.wait_for(anext(sampler), 15)
            assert frame.image.shape == (120, 160, 3)
            assert source.kind == "http"
            assert source.state is SourceState.STREAMING
        finally:
            sampler.close()
            await source.aclose()


class TestHelpers:
    @pytest.mark.parametrize(
        ("url", "kind"),
        [("rtsp://h/x", "rtsp"), ("RTSPS://h/x", "rtsp"), ("http://h/mjpg", "http"), ("https://h/a", "http")],
    )
    def test_source_kind(self, url: str, kind: str) -> None:
        assert source_kind(url) == kind

    def test_unknown_scheme_is_refused(self) -> None:
        with pytest.raises(ValueError, match="rtsp"):
            source_kind("ftp://h/x")

    def test_fit_width_never_upscales_or_copies(self) -> None:
        import numpy as np

        small = np.zeros((90, 160, 3), np.uint8)
        assert fit_width(small, 320) is small
        assert fit_width(np.zeros((720, 1280, 3), np.uint8), 320).shape == (180, 320, 3)


def test_timeline_maps_timestamps_to_wall_time_and_reanchors_on_a_jump() -> None:
    timeline = Timeline(1 / 90_000)
    assert timeline.at(9_000, 100.0) == 100.0  # anchored on the first packet
    assert timeline.at(9_000 + 90_000, 101.05) == pytest.approx(101.0)  # pts time, not arrival jitter
    assert timeline.at(9_000 + 90_000 * 60, 102.0) == 102.0  # a 60-s jump: re-anchored on arrival
    assert timeline.at(None, 103.0) == 103.0
