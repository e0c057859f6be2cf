"""Join recorded segments into one MP4 (remux, no re-encode), cut at keyframes, index at the front.

The export starts at the last keyframe at or before `since` and stops before the first packet whose
decode time is at or after `until` (a decode-order prefix is always decodable). Timestamps follow the
wall clock: each segment is placed at its `started_at`, so a gap in the recording stays a gap in time.
A segment whose stream differs (codec or size, after a reconnect) ends the export there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

log = logging.getLogger("argus.recording")


@dataclass(frozen=True, slots=True)
class SegmentRef:
    path: Path
    started_at: float  # wall clock of its first packet


@dataclass(frozen=True, slots=True)
class Exported:
    packets: int
    duration_s: float
    segments: int


class _Joiner:
    def __init__(self, out_path: Path) -> None:
        self.out: Any = av.open(str(out_path), "w", format="mp4", options={"movflags": "+faststart"})
        self.stream: Any = None
        self.shape: tuple[str, int, int] | None = None
        self.t0: float | None = None  # wall clock of the export's first packet
        self.tb = Fraction(1, 90_000)
        self.last_dts = -1
        self.end = 0
        self.packets = 0
        self.pending: list[tuple[Any, float]] = []  # the GOP that may hold `since`, until it is known

    def hold(self, packet: Any, at: float) -> None:
        if packet.is_keyframe:
            self.pending = [(packet, at)]
        elif self.pending:
            self.pending.append((packet, at))

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        for packet, at in pending:
            self.mux(packet, at)

    def accepts(self, in_stream: Any) -> bool:
        ctx = in_stream.codec_context
        shape = (ctx.name, ctx.width, ctx.height)
        if self.stream is None:
            self.stream = self.out.add_stream_from_template(in_stream)
            self.shape = shape
        return shape == self.shape

    def mux(self, packet: Any, at: float) -> None:
        """`packet` from an input segment, `at` its wall-clock presentation time."""
        if self.t0 is None:
            self.t0 = at
        tb = packet.time_base
        shift = round(Fraction(at - self.t0) / self.tb) - round(packet.pts * tb / self.tb)
        dts = round((packet.dts if packet.dts is not None else packet.pts) * tb / self.tb) + shift
        if dts <= self.last_dts:  # rounding at a boundary, or a clock step back: keep dts increasing
            shift += self.last_dts + 1 - dts
            dts = self.last_dts + 1
        out = av.Packet(bytes(packet))
        out.pts = round(packet.pts * tb / self.tb) + shift
        out.dts = dts
        out.duration = round(packet.duration * tb / self.tb)
        out.time_base = self.tb
        out.is_keyframe = packet.is_keyframe
        out.stream = self.stream
        self.end = max(self.end, out.pts + out.duration)  # before mux: it rebases to the stream's time base
        self.out.mux(out)
        self.last_dts = dts
        self.packets += 1

    def close(self) -> float:
        self.out.close()
        return float(self.end * self.tb)


def export(segments: list[SegmentRef], since: float, until: float, out_path: Path) -> Exported:
    """Blocking: write the span [since, until) of `segments` (ordered by start) to `out_path`."""
    joiner = _Joiner(out_path)
    used = 0
    try:
        for ref in segments:
            used += 1
            if not _copy(ref, since, until, joiner):
                break
        joiner.flush()  # `since` fell in the last GOP recorded
    finally:
        duration = joiner.close() if joiner.stream is not None else 0.0
    return Exported(joiner.packets, duration, used)


def _copy(ref: SegmentRef, since: float, until: float, joiner: _Joiner) -> bool:
    """Copy one segment's share of the span; False once the span (or a compatible stream) ended."""
    with av.open(str(ref.path)) as inp:
        in_stream = inp.streams.video[0]
        if not joiner.accepts(in_stream):
            log.info("export stops at %s: the stream changed", ref.path.name)
            return False
        first: int | None = None
        try:
            for packet in inp.demux(in_stream):
                if packet.size == 0 or packet.pts is None:
                    continue
                first = packet.pts if first is None else first
                tb = packet.time_base
                at = ref.started_at + float((packet.pts - first) * tb)
                dts = packet.dts if packet.dts is not None else packet.pts
                if ref.started_at + float((dts - first) * tb) >= until:
                    return False
                if joiner.t0 is None and at <= since:
                    joiner.hold(packet, at)  # before the span: only its last GOP is kept
                elif joiner.t0 is not None or joiner.pending or packet.is_keyframe:
                    joiner.flush()
                    joiner.mux(packet, at)
        except av.FFmpegError as exc:  # a segment still being written ends in a torn fragment
            log.debug("export: %s read to %s", ref.path.name, exc)
    return True
