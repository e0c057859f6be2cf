"""The activity gate on real footage over real RTSP (H.264 served as encoded, 2-s GOP).

Stream times, not wall-clock reaction times, are compared: the gate's opening is the stream time of the
packet being processed when it opened, the motion's start the stream time of the first moving frame
(the clip's first packet + `motion_starts_s`), so a loaded machine does not make the test flaky.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.config import Settings
from app.stream.drop_policy import DropReason
from app.stream.source import SourceState, StreamSource
from tests.support.footage import Clip, footage_clip
from tests.support.rtsp import RtspServer
from tests.support.waiting import eventually

pytestmark = pytest.mark.rtsp
WIDTH = 640  # the gate's logic is resolution-free; small clips keep the suite fast


@pytest.fixture(scope="module")
def footage_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("footage")


def first_packet_at(source: StreamSource) -> float:
    return source.ring.since(float("-inf"))[0].at


async def watch(
    rtsp_factory: type[RtspServer], clip: Clip, settings: Settings, seconds: float
) -> StreamSource:
    server = rtsp_factory(mounts=1, source=str(clip.path))
    server.start()
    source = StreamSource(1, server.url(1), settings, decode="gated", pre_roll_s=120.0)
    source.start()
    try:

        async def streaming() -> bool:
            return source.state is SourceState.STREAMING

        await eventually(streaming, 15)
        await asyncio.sleep(seconds)
    finally:
        await source.aclose()
    return source


@pytest.mark.parametrize("bitrate", [None, 1_000_000], ids=["crf", "fixed-rate"])
async def test_gate_opens_within_one_gop_of_real_motion(
    rtsp_factory: type[RtspServer], settings: Settings, footage_dir: Path, bitrate: int | None
) -> None:
    # given a real scene held still for 6 s, then pedestrians walking
    clip = footage_clip(footage_dir, still_s=6, motion_s=5, width=WIDTH, bitrate=bitrate)
    # when a gated camera watches it
    source = await watch(rtsp_factory, clip, settings, clip.duration_s)
    # then the gate opened once, within one GOP + 0.5 s of the first moving frame, never before it
    motion_at = first_packet_at(source) + clip.motion_starts_s
    assert source.gate_opens, source.activity.stats
    onset = source.gate_opens[0] - motion_at
    assert -0.1 <= onset <= clip.gop_s + 0.5, onset
    # and while still, only keyframes (or fewer) were decoded
    status = source.status()
    assert status.drops[DropReason.NOT_DECODED] >= 0.8 * 6 * clip.fps


async def test_sensor_noise_on_a_still_scene_never_opens_the_gate(
    rtsp_factory: type[RtspServer], settings: Settings, footage_dir: Path
) -> None:
    # given a still scene with night-like sensor noise (sd 6 grey levels), then real motion
    clip = footage_clip(footage_dir, still_s=10, motion_s=3, noise=6, width=WIDTH)
    source = await watch(rtsp_factory, clip, settings, clip.duration_s)
    motion_at = first_packet_at(source) + clip.motion_starts_s
    # then nothing opened the gate during the noise, and the real motion did within one GOP + 0.5 s
    opens = list(source.gate_opens)
    assert opens and opens[0] >= motion_at - 0.1, (opens, motion_at)
    assert opens[0] - motion_at <= clip.gop_s + 0.5
    assert not source.activity.informative, "noisy P-frames are large: packet sizes say nothing"
