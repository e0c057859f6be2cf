"""What a camera decodes under each `decode` policy, and who can ask for every frame (real H.264 footage)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.config import Settings
from app.stream.drop_policy import DropReason
from app.stream.source import StreamSource
from tests.support.footage import Clip, footage_clip
from tests.support.waiting import eventually


@pytest.fixture(scope="module")
def still_clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    """A real scene held still for 20 s (2-s GOP): a calm camera."""
    return footage_clip(tmp_path_factory.mktemp("footage"), still_s=20, motion_s=0.2, width=640)


async def packets_seen(source: StreamSource, n: int) -> None:
    async def enough() -> bool:
        return source.status().frames_in >= n

    await eventually(enough, 30, interval=0.1)


@pytest.fixture
async def started(
    request: pytest.FixtureRequest, still_clip: Clip, settings: Settings
) -> AsyncIterator[StreamSource]:
    source = StreamSource(1, str(still_clip.path), settings, decode=request.param)
    source.start()
    yield source
    await source.aclose()


@pytest.mark.parametrize("started", ["keyframes", "gated"], indirect=True)
async def test_a_calm_camera_decodes_keyframes_at_most(started: StreamSource) -> None:
    await packets_seen(started, 75)
    status = started.status()
    keyframes = status.frames_in // 30 + 1
    assert 1 <= status.frames_decoded <= keyframes
    assert status.drops[DropReason.NOT_DECODED] >= status.frames_in - keyframes
    assert status.gate == "calm"
    # and the snapshot stays fresh from those keyframes, at the analysis width
    latest = started.latest()
    assert latest is not None and latest.image.shape[1] == 320


@pytest.mark.parametrize("started", ["keyframes"], indirect=True)
async def test_a_viewer_or_an_open_event_gets_every_frame_from_the_last_keyframe(
    started: StreamSource,
) -> None:
    await packets_seen(started, 40)
    # when someone watches live
    started.set_live_demand(5.0)
    before = started.status()
    await packets_seen(started, before.frames_in + 30)
    after = started.status()
    # then every frame since (plus the catch-up from the last keyframe) was decoded
    assert after.frames_decoded - before.frames_decoded >= after.frames_in - before.frames_in
    started.set_live_demand(0)
    # and an analyzer's demand does the same
    started.set_pixel_demand(True)
    before = started.status()
    await packets_seen(started, before.frames_in + 20)
    assert started.status().frames_decoded - before.frames_decoded >= 20
    started.set_pixel_demand(False)
    before = started.status()
    await packets_seen(started, before.frames_in + 31)
    assert started.status().frames_decoded - before.frames_decoded <= 2


@pytest.mark.parametrize("started", ["all"], indirect=True)
async def test_decode_all_decodes_every_frame(started: StreamSource) -> None:
    await packets_seen(started, 45)
    status = started.status()
    assert status.frames_decoded >= status.frames_in - 1
    assert status.gate == "active" and status.gop_s == pytest.approx(2.0, abs=0.2)
    assert DropReason.NOT_DECODED not in status.drops
