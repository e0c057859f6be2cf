"""PartWriter: one fragmented MP4 file remuxed from packets (no re-encode), readable while it grows.

FFmpeg's mp4 muxer keeps a fragment in memory and writes it (`moof`+`mdat`) when the next keyframe
arrives (`frag_keyframe`); `flush_packets` pushes it to the file at once, so after each keyframe the
file's complete prefix grows by one GOP, which `FragmentScanner` measures. A `.writing` marker beside the
file says it is unfinished, for the repair at the next start should the process die.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, BinaryIO

import av

from app.recording.fmp4 import FragmentScanner, repair
from app.stream.packets import Packet, StreamInfo

log = logging.getLogger("argus.clips")
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
WRITING = ".writing"


def marker_of(path: Path) -> Path:
    return path.with_name(path.name + WRITING)


class _Templates:
    """Each connection's template opened once: opening probes it (decoding its keyframe, ~9 ms at 720p),
    which was most of a short clip's cost. Bounded; shared by the writer threads under one lock."""

    def __init__(self, size: int = 32) -> None:
        self._open: OrderedDict[int, tuple[StreamInfo, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size
        self.opened = 0

    def add_stream(self, out: Any, info: StreamInfo) -> Any:
        with self._lock:
            hit = self._open.get(id(info))
            if hit is None or hit[0] is not info:  # ids are reused once an info is gone: check identity
                hit = (info, info.open_template())
                self.opened += 1
                self._open[id(info)] = hit
            self._open.move_to_end(id(info))
            while len(self._open) > self._size:
                self._open.popitem(last=False)[1][1].close()
            return out.add_stream_from_template(hit[1].streams.video[0])


TEMPLATES = _Templates()


class PartWriter:
    """Opened with the part's first packet, a keyframe; `write()` the rest; `close()` once."""

    def __init__(self, path: Path, first: Packet) -> None:
        self.path = path
        self.generation = first.info.generation
        self.started_at = first.at
        self._offset = _dts(first) or 0
        self._last_dts: int | None = None
        self._last_key_at = first.at
        self._gop_s = 0.0
        self._reader: BinaryIO | None = None  # opened once the muxer has created the file
        self._scanner = FragmentScanner()
        self.readable = 0
        self.skipped = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        marker_of(path).touch()
        self._out: Any = None
        try:
            self._out = av.open(
                str(path), "w", format="mp4", options={"movflags": MOVFLAGS, "flush_packets": "1"}
            )
            self._stream = TEMPLATES.add_stream(self._out, first.info)
        except Exception:
            if self._out is not None:
                self._out.close()
            marker_of(path).unlink(missing_ok=True)
            raise

    def wants_new_part(self, packet: Packet, max_s: float) -> bool:
        """A new connection, or a keyframe after which the next GOP would take the part past max_s."""
        if packet.info.generation != self.generation:
            return True
        if not packet.key:
            return False
        gop = packet.at - self._last_key_at
        return packet.at - self.started_at + max(gop, self._gop_s) > max_s

    def write(self, packet: Packet) -> bool:
        """Mux one packet; True when a fragment was completed (more of the file is readable)."""
        dts = _dts(packet)
        if dts is not None and self._last_dts is not None and dts <= self._last_dts:
            self.skipped += 1  # the muxer refuses non-increasing timestamps; one glitch must not end the clip
            return False
        self._last_dts = dts
        self._out.mux(packet.to_av(self._stream, self._offset))
        if not packet.key:
            return False
        if packet.at > self._last_key_at:
            self._gop_s = packet.at - self._last_key_at
            self._last_key_at = packet.at
        return self._refresh()

    def _refresh(self) -> bool:
        if self._reader is None:
            if not self.path.exists():
                return False  # the muxer creates the file with its first packet
            self._reader = open(self.path, "rb")  # noqa: SIM115 - held for the part's life, closed in close()
        before = self._scanner.fragments
        self.readable = self._scanner.advance(self._reader, os.fstat(self._reader.fileno()).st_size)
        return self._scanner.fragments > before

    def close(self) -> int:
        """Write the last fragment and the trailer; returns the readable size (0: nothing usable, deleted)."""
        try:
            self._out.close()
            self._refresh()
            if self._reader is not None:
                os.fsync(self._reader.fileno())  # the finished file survives a power cut as it is served
        except Exception:
            log.exception("clip part %s did not close cleanly; cutting it to its last fragment", self.path)
            repair(self.path)
            self.readable = self.path.stat().st_size if self.path.exists() else 0
        finally:
            if self._reader is not None:
                self._reader.close()
            marker_of(self.path).unlink(missing_ok=True)
        if self._scanner.fragments == 0 and self.readable == 0:
            self.path.unlink(missing_ok=True)
        return self.readable


def _dts(packet: Packet) -> int | None:
    return packet.dts if packet.dts is not None else packet.pts
