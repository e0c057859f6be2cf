"""SegmentWriter on a real H.264 packet stream: contiguous segments cut at keyframes, playable files."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from app.recording.segments import SegmentClosed, SegmentEvent, SegmentOpened, SegmentWriter, finish_file
from app.stream.packets import PacketRing
from tests.support.segment_media import decoded_frames, feed, make_h264, packets

FPS, GOP = 15, 15  # one keyframe a second


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_h264(tmp_path_factory.mktemp("media") / "bar.mkv", seconds=8, fps=FPS, gop=GOP)


def record(clip: Path, data_dir: Path, segment_s: float, **kw: object) -> list[SegmentEvent]:
    events: list[SegmentEvent] = []
    ring = PacketRing(1, pre_roll_s=3)
    writer = SegmentWriter(1, ring, data_dir, segment_s, events.append, **kw)  # type: ignore[arg-type]
    writer.start()
    assert writer.tapped.wait(5)  # the writer taps the ring before the camera's first packet arrives
    feed(ring, list(packets(clip)))
    writer.stop()
    return events


def closed(events: list[SegmentEvent]) -> list[SegmentClosed]:
    return [e for e in events if isinstance(e, SegmentClosed)]


def test_segments_are_contiguous_and_cut_at_keyframes(clip: Path, tmp_path: Path) -> None:
    events = record(clip, tmp_path, segment_s=2.0)
    segments = closed(events)
    assert [type(e) for e in events] == [SegmentOpened, SegmentClosed] * 4
    for before, after in itertools.pairwise(segments):
        assert after.started_at == before.ended_at  # the keyframe that ended one opens the next
    assert [round(s.ended_at - s.started_at, 2) for s in segments[:3]] == [2.0, 2.0, 2.0]
    assert segments[-1].ended_at - segments[0].started_at == pytest.approx(8.0, abs=0.1)
    for segment in segments:
        frames = decoded_frames(tmp_path / segment.path)
        assert frames[0] == (0.0, True)
        assert len(frames) == 2 * FPS
        assert segment.bytes == (tmp_path / segment.path).stat().st_size > 0


def test_a_new_connection_starts_a_new_segment(clip: Path, tmp_path: Path) -> None:
    events: list[SegmentEvent] = []
    ring = PacketRing(1, pre_roll_s=3)
    writer = SegmentWriter(1, ring, tmp_path, 60.0, events.append)
    writer.start()
    assert writer.tapped.wait(5)
    feed(ring, list(packets(clip)))
    feed(ring, list(packets(clip, base=1_800_000_100.0, generation=2)))
    writer.stop()
    segments = closed(events)
    assert len(segments) == 2
    assert segments[0].ended_at == pytest.approx(segments[0].started_at + 8.0, abs=0.1)
    assert segments[1].started_at == 1_800_000_100.0
    assert all(len(decoded_frames(tmp_path / s.path)) == 8 * FPS for s in segments)


def test_no_segment_starts_while_the_disk_is_below_its_floor(clip: Path, tmp_path: Path) -> None:
    events = record(clip, tmp_path, segment_s=2.0, may_write=lambda: False)
    assert events == []
    assert not any(tmp_path.rglob("*.mp4"))


def test_a_torn_segment_is_finished_from_its_readable_fragments(clip: Path, tmp_path: Path) -> None:
    segment = closed(record(clip, tmp_path, segment_s=60.0))[0]
    path = tmp_path / segment.path
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])  # the process died mid-fragment
    done = finish_file(path)
    assert done is not None and 2.0 <= done.duration_s < 8.0
    frames = decoded_frames(path)
    assert frames[0][1] and len(frames) == round(done.duration_s * FPS)
    path.write_bytes(data[:100])  # died before the first fragment: nothing to keep
    assert finish_file(path) is None and not path.exists()
