"""Continuous recording: one writer thread per camera cuts its packet stream into MP4 segments.

    writer = SegmentWriter(camera_id, ring, data_dir, segment_s=60, sink=on_segment)
    writer.start()   # taps the ring from its last keyframe; remuxes (no re-encode) into fragmented MP4
    writer.stop()    # finishes the open segment

A segment ends at the first keyframe at least `segment_s` after it started, and that keyframe opens the
next one, so segments are contiguous (no gap, no overlap) while the stream is up. A new connection
(`StreamInfo.generation`), a stall or a lost tap ends the segment at its last packet. Files are fragmented
MP4 (a fragment per GOP): a crash leaves every complete GOP readable, and `finish_file` at the next start
rewrites such a file cleanly or discards it. `sink` hears SegmentOpened / SegmentClosed (from the writer
thread) and keeps the `recordings` index; see app/recording/continuous.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av

from app.recording import fmp4
from app.stream.packets import Packet, PacketRing, PacketTap, StreamInfo

log = logging.getLogger("argus.recording")
RECORDINGS = "media/recordings"  # under DATA_DIR
FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
STALL_S = 10.0  # no packet for this long: finish the open segment (the source reconnects meanwhile)


@dataclass(frozen=True, slots=True)
class SegmentOpened:
    camera_id: int
    path: str  # relative to DATA_DIR
    started_at: float


@dataclass(frozen=True, slots=True)
class SegmentClosed:
    camera_id: int
    path: str
    started_at: float
    ended_at: float
    bytes: int


SegmentEvent = SegmentOpened | SegmentClosed


def segment_relpath(camera_id: int, started_at: float) -> str:
    """media/recordings/<camera>/<UTC day>/<HH-MM-SS.mmm>.mp4, relative to DATA_DIR."""
    t = datetime.fromtimestamp(started_at, UTC)
    return f"{RECORDINGS}/{int(camera_id)}/{t:%Y-%m-%d}/{t:%H-%M-%S}.{t.microsecond // 1000:03d}.mp4"


class SegmentFile:
    """One MP4 being written: packets remuxed with timestamps shifted to start at zero."""

    def __init__(self, path: Path, first: Packet) -> None:
        self.path = path
        self.info: StreamInfo = first.info
        self.started_at = first.at
        self.ended_at = first.at
        self.offset = first.dts if first.dts is not None else (first.pts or 0)
        self.packets = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        template = first.info.open_template()
        try:
            self.out: Any = av.open(str(path), "w", format="mp4", options=FRAGMENTED)
            self.stream = self.out.add_stream_from_template(template.streams.video[0])
        finally:
            template.close()

    def write(self, packet: Packet) -> None:
        try:
            self.out.mux(packet.to_av(self.stream, self.offset))
        except (av.FFmpegError, ValueError) as exc:  # a bad timestamp: skip the packet, keep the file
            log.debug("camera %s: packet skipped in %s: %s", self.info.camera_id, self.path.name, exc)
            return
        self.packets += 1
        self.ended_at = packet.at + float(packet.duration * packet.info.time_base)

    def close(self) -> int:
        try:
            self.out.close()
        except av.FFmpegError as exc:
            log.warning("camera %s: closing %s: %s", self.info.camera_id, self.path, exc)
        return self.path.stat().st_size if self.path.exists() else 0


class SegmentWriter:
    """The thread that records one camera: a ring tap in, segment files out."""

    def __init__(
        self,
        camera_id: int,
        ring: PacketRing,
        data_dir: Path,
        segment_s: float,
        sink: Callable[[SegmentEvent], None],
        may_write: Callable[[], bool] = lambda: True,
        stall_s: float = STALL_S,
    ) -> None:
        self.camera_id = camera_id
        self.ring = ring
        self.data_dir = Path(data_dir)
        self.segment_s = segment_s
        self.sink = sink
        self.may_write = may_write
        self.stall_s = stall_s
        self.segments = 0
        self.lost_taps = 0
        self.refused = 0  # segments not started: the disk was below its free-space floor
        self._current: SegmentFile | None = None
        self._last_end = 0.0  # a new tap never rewrites what an earlier one wrote
        self._tap: PacketTap | None = None
        self._stopping = threading.Event()
        self.tapped = threading.Event()  # set once the ring is tapped: packets appended from then on are kept
        self._thread = threading.Thread(target=self._run, name=f"argus.record:{camera_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Blocking: finish the open segment and end the thread."""
        self._stopping.set()
        if self._tap is not None:
            self._tap.close()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def recording(self) -> bool:
        return self._current is not None

    def _run(self) -> None:
        while not self._stopping.is_set():
            tap = self._tap = self.ring.tap(since=time.time())
            self.tapped.set()
            if self._stopping.is_set():
                tap.close()
            try:
                self._consume(tap)
            except Exception:
                log.exception("camera %s: recording failed; starting again", self.camera_id)
                time.sleep(1.0)
            finally:
                self._finish()
            if tap.lost:
                self.lost_taps += 1
                log.warning("camera %s: recorder fell behind the stream; new segment", self.camera_id)

    def _consume(self, tap: PacketTap) -> None:
        last_packet = time.monotonic()
        while True:
            packet = tap.get(timeout=1.0)
            if packet is None:
                if tap.closed:
                    return
                if self._current is not None and time.monotonic() - last_packet > self.stall_s:
                    self._finish()
                continue
            last_packet = time.monotonic()
            self._on_packet(packet)

    def _on_packet(self, packet: Packet) -> None:
        current = self._current
        if current is not None and packet.info is not current.info:
            self._finish()  # a new connection: new parameters, timestamps restart
        elif current is not None and packet.key and packet.at - current.started_at >= self.segment_s:
            self._finish(ended_at=packet.at)
        if self._current is None and not self._open(packet):
            return
        assert self._current is not None
        self._current.write(packet)

    def _open(self, packet: Packet) -> bool:
        if not packet.key or packet.at < self._last_end - 1e-6:
            return False
        if not self.may_write():
            self.refused += 1
            return False
        rel = segment_relpath(self.camera_id, packet.at)
        path = self.data_dir / rel
        if path.exists():  # the same start twice (clock step): never overwrite a finished segment
            return False
        self._current = SegmentFile(path, packet)
        self.sink(SegmentOpened(self.camera_id, rel, packet.at))
        return True

    def _finish(self, ended_at: float | None = None) -> None:
        current, self._current = self._current, None
        if current is None:
            return
        size = current.close()
        end = ended_at if ended_at is not None else current.ended_at
        self._last_end = end
        self.segments += 1
        rel = current.path.relative_to(self.data_dir).as_posix()
        self.sink(SegmentClosed(self.camera_id, rel, current.started_at, end, size))


@dataclass(frozen=True, slots=True)
class Finished:
    duration_s: float
    bytes: int


def finish_file(path: Path) -> Finished | None:
    """Blocking: finish a segment whose writing never finished (a crash): cut it to its last complete
    fragment and measure it. Returns its duration and size, or None after deleting it when nothing in it
    can be played."""
    try:
        if fmp4.repair(path) == 0:
            return None
        duration = _duration(path)
    except (av.FFmpegError, OSError, ValueError) as exc:
        log.warning("unreadable segment %s: %s", path, exc)
        duration = None
    if duration is None:
        path.unlink(missing_ok=True)
        return None
    return Finished(duration, path.stat().st_size)


def _duration(path: Path) -> float | None:
    """Seconds from the first packet's start to the last one's end (None: no packet)."""
    first, end = None, 0.0
    with av.open(str(path)) as inp:
        for packet in inp.demux(video=0):
            if packet.size == 0 or packet.pts is None:
                continue
            first = packet.pts if first is None else first
            end = max(end, float((packet.pts - first + (packet.duration or 0)) * packet.time_base))
    return None if first is None else end
