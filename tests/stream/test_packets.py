"""PacketRing and taps on real H.264 packets: pre-roll back to a keyframe, byte bound, remux that plays."""

from __future__ import annotations

import threading
from fractions import Fraction
from pathlib import Path

import av
import cv2
import pytest

from app.stream.packets import Packet, PacketRing
from tests.support.footage import file_packets, footage_clip

FPS = 15


@pytest.fixture(scope="module")
def packets(tmp_path_factory: pytest.TempPathFactory) -> list[Packet]:
    """8 s of real footage as the source would keep it: bytes, timestamps, wall times 1/15 s apart."""
    clip = footage_clip(tmp_path_factory.mktemp("footage"), still_s=2, motion_s=6, width=640)
    return file_packets(clip.path, base=1000.0)


def fill(ring: PacketRing, packets: list[Packet]) -> None:
    for packet in packets:
        ring.append(packet)


class TestRing:
    def test_keeps_pre_roll_back_to_the_keyframe_before_it(self, packets: list[Packet]) -> None:
        ring = PacketRing(1, pre_roll_s=3.0)
        fill(ring, packets)
        kept = ring.since(float("-inf"))
        newest = packets[-1].at
        assert kept[0].key, "the ring always starts at a keyframe"
        assert kept[0].at <= newest - 3.0, "at least pre_roll_s is kept"
        assert kept[0].at > newest - 3.0 - 2.0 - 1e-6, "but no more than one GOP beyond it"
        assert kept[-1] is packets[-1]

    def test_byte_bound_drops_whole_gops(self, packets: list[Packet]) -> None:
        gop_bytes = sum(p.size for p in packets[:30])
        ring = PacketRing(1, pre_roll_s=60.0, max_bytes=int(gop_bytes * 1.5))
        fill(ring, packets)
        assert ring.nbytes <= gop_bytes * 1.5 or len(ring.since(float("-inf"))) <= 31
        assert ring.since(float("-inf"))[0].key

    def test_since_starts_at_the_keyframe_at_or_before_the_time(self, packets: list[Packet]) -> None:
        ring = PacketRing(1, pre_roll_s=60.0)
        fill(ring, packets)
        t = packets[70].at  # inside the third GOP (keyframes at 0, 30, 60, ...)
        backlog = ring.since(t)
        assert backlog[0] is packets[60]
        assert ring.last_keyframe_packets()[0].key

    def test_tap_gets_backlog_then_live_packets_and_ends_on_close(self, packets: list[Packet]) -> None:
        ring = PacketRing(1, pre_roll_s=60.0)
        fill(ring, packets[:45])
        tap = ring.tap(since=packets[40].at)
        received: list[Packet] = []
        reader = threading.Thread(target=lambda: received.extend(tap))
        reader.start()
        fill(ring, packets[45:])
        tap.close()
        reader.join(5)
        assert received[0] is packets[30]
        assert received == packets[30:]

    def test_a_tap_that_falls_behind_is_closed_not_waited_for(self, packets: list[Packet]) -> None:
        ring = PacketRing(1)
        tap = ring.tap(max_packets=10)
        fill(ring, packets[:20])
        assert tap.closed and tap.lost == 1


def test_remuxed_ring_packets_play_in_pyav_and_opencv(packets: list[Packet], tmp_path: Path) -> None:
    """What clip writers do: template stream + ring packets -> fragmented MP4, no re-encoding."""
    ring = PacketRing(1, pre_roll_s=60.0)
    fill(ring, packets)
    backlog = ring.since(packets[35].at)
    path = tmp_path / "clip.mp4"
    options = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
    with (
        packets[0].info.open_template() as template,
        av.open(str(path), "w", format="mp4", options=options) as out,
    ):
        stream = out.add_stream_from_template(template.streams.video[0])
        for packet in backlog:
            out.mux(packet.to_av(stream, offset=backlog[0].dts or 0))
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
        times = [f.time for f in frames]
    assert len(frames) == len(backlog)
    assert times == sorted(times)
    assert times[-1] - times[0] == pytest.approx((len(backlog) - 1) / FPS, abs=0.1)
    cap = cv2.VideoCapture(str(path))
    count = 0
    while cap.grab():
        count += 1
    cap.release()
    assert count == len(backlog)


def test_stream_info_template_is_small(packets: list[Packet]) -> None:
    info = packets[0].info
    assert info.codec == "h264" and info.time_base == Fraction(1, 1000)
    assert len(info.template) < 200_000
