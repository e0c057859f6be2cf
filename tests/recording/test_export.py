"""export(): segments joined into one MP4 by remux; it plays from a keyframe and lasts what it covers."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from app.recording.export import SegmentRef, export
from app.recording.segments import SegmentClosed, SegmentEvent, SegmentWriter
from app.stream.packets import PacketRing
from tests.support.segment_media import decoded_frames, feed, make_h264, packets

FPS = 15


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[SegmentClosed]]:
    """8 s of video (a keyframe a second) recorded as four 2-s segments."""
    root = tmp_path_factory.mktemp("rec")
    clip = make_h264(root / "bar.mkv", seconds=8, fps=FPS, gop=FPS)
    events: list[SegmentEvent] = []
    ring = PacketRing(1)
    writer = SegmentWriter(1, ring, root, 2.0, events.append)
    writer.start()
    assert writer.tapped.wait(5)
    feed(ring, list(packets(clip)))
    writer.stop()
    return root, [e for e in events if isinstance(e, SegmentClosed)]


def refs(root: Path, segments: list[SegmentClosed]) -> list[SegmentRef]:
    return [SegmentRef(root / s.path, s.started_at) for s in segments]


def container_duration(path: Path) -> float:
    with av.open(str(path)) as inp:
        return float(inp.duration) / av.time_base


def test_export_of_three_segments_plays_for_their_whole_span(
    recorded: tuple[Path, list[SegmentClosed]], tmp_path: Path
) -> None:
    root, segments = recorded
    three = segments[:3]
    out = tmp_path / "export.mp4"
    result = export(refs(root, three), three[0].started_at, three[-1].ended_at, out)
    assert result.segments == 3 and result.packets == 6 * FPS
    assert result.duration_s == pytest.approx(6.0, abs=0.01)
    assert container_duration(out) == pytest.approx(6.0, abs=0.07)
    frames = decoded_frames(out)
    assert len(frames) == 6 * FPS and frames[0] == (0.0, True)
    times = [t for t, _ in frames]
    assert times == sorted(times) and times[-1] == pytest.approx(6.0 - 1 / FPS, abs=0.01)
    data = out.read_bytes()
    assert data[4:8] == b"ftyp" and data.find(b"moov") < data.find(b"mdat")  # the index first: plays at once


def test_export_starts_at_the_keyframe_before_since_and_stops_at_until(
    recorded: tuple[Path, list[SegmentClosed]], tmp_path: Path
) -> None:
    root, segments = recorded
    t0 = segments[0].started_at
    out = tmp_path / "span.mp4"
    result = export(refs(root, segments), t0 + 2.5, t0 + 5.5, out)
    frames = decoded_frames(out)
    assert frames[0][1]  # a keyframe first: the one at t0 + 2
    assert len(frames) == 53  # from t0 + 2 to the last frame before t0 + 5.5 (t0 + 5 + 7/15)
    assert result.duration_s == pytest.approx(53 / FPS, abs=0.01)
