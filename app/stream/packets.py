"""Encoded packets: what the stream layer keeps of every camera (the ring) and hands to clip writers (taps).

    ring = PacketRing(camera_id, pre_roll_s=5, max_bytes=64 MiB)   # the source appends, any thread reads
    ring.append(packet)                     # demux thread: trims to pre-roll, back to a keyframe
    packets = ring.since(t)                 # from the last keyframe at or before wall time t, to now
    tap = ring.tap(since=t)                 # the same backlog, then every new packet, until tap.close()
    for packet in tap: ...                  # blocks; ends when closed; `tap.lost` counts overflow

A `Packet` holds the bytes (not FFmpeg's buffer: the demuxer's packets are reused), its timestamps in its
stream's time base, the key flag and the wall-clock time it maps to. `StreamInfo` carries what a muxer
needs to write the stream without re-encoding: codec parameters, as a tiny Matroska `template` holding
the stream header and its first keyframe (PyAV copies codec parameters only from an open stream, and
`open_template()` gives one back whenever a clip is written, long after the camera's connection closed).
A new connection gets a new `StreamInfo` (`generation`), so a writer knows when parameters may change.
"""

from __future__ import annotations

import io
import queue
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

DEFAULT_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True, eq=False)
class StreamInfo:
    camera_id: int
    generation: int  # 1 for the first connection, +1 per reconnect
    codec: str  # FFmpeg codec name: h264, hevc, mjpeg...
    width: int
    height: int
    time_base: Fraction
    fps: float | None  # the stream's nominal rate, when it says
    template: bytes  # Matroska: stream header + first keyframe; see open_template()

    def open_template(self) -> Any:
        """An input container whose video stream is the template for `add_stream_from_template`."""
        return av.open(io.BytesIO(self.template), "r", format="matroska", options={"probesize": "32"})


@dataclass(frozen=True, slots=True, eq=False)
class Packet:
    data: bytes
    pts: int | None
    dts: int | None
    duration: int
    key: bool
    at: float  # wall-clock epoch seconds this packet's pts maps to
    info: StreamInfo

    @property
    def size(self) -> int:
        return len(self.data)

    def to_av(self, stream: Any = None, offset: int = 0) -> av.Packet:
        """An av.Packet for `stream` of an output container (None: for a decoder), shifted by `offset`."""
        packet = av.Packet(self.data)
        packet.pts = None if self.pts is None else self.pts - offset
        packet.dts = None if self.dts is None else self.dts - offset
        packet.duration = self.duration
        packet.time_base = self.info.time_base
        packet.is_keyframe = self.key
        if stream is not None:
            packet.stream = stream
        return packet


def make_template(stream: Any, keyframe: Any) -> bytes:
    """Matroska bytes holding `stream`'s parameters and one keyframe (so a reader can probe it)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska") as out:
        copy = out.add_stream_from_template(stream)
        packet = av.Packet(bytes(keyframe))
        packet.pts = packet.dts = 0
        packet.time_base = keyframe.time_base
        packet.is_keyframe = True
        packet.stream = copy
        out.mux(packet)
    return buffer.getvalue()


class PacketTap:
    """A bounded stream of packets for one consumer: the ring's backlog, then each new packet.

    The demux thread never blocks on a tap: past `max_packets` queued, packets are counted in `lost`
    and the tap is closed (a writer that falls that far behind cannot produce a valid file anyway).
    """

    def __init__(self, backlog: list[Packet], max_packets: int) -> None:
        self._queue: queue.SimpleQueue[Packet | None] = queue.SimpleQueue()
        self._max = max_packets
        self._closed = False
        self.lost = 0
        for packet in backlog:
            self._queue.put(packet)

    def offer(self, packet: Packet) -> bool:
        """Demux thread: queue a packet; False once the tap is closed (the ring then forgets it)."""
        if self._closed:
            return False
        if self._queue.qsize() >= self._max:
            self.lost += 1
            self.close()
            return False
        self._queue.put(packet)
        return True

    def get(self, timeout: float | None = None) -> Packet | None:
        """The next packet; None when closed (or on timeout). Raises nothing."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)

    @property
    def closed(self) -> bool:
        return self._closed

    def __iter__(self) -> Iterator[Packet]:
        while (packet := self._queue.get()) is not None:
            yield packet


class PacketRing:
    """The last `pre_roll_s` seconds of one camera's packets, always back to a keyframe, bounded in bytes.

    Kept as a deque of GOPs (each a list starting at its keyframe), so trimming, `since()` and the
    catch-up backlog touch GOPs, not packets: the demux thread pays a few microseconds per packet.
    """

    def __init__(self, camera_id: int, pre_roll_s: float = 5.0, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.camera_id = camera_id
        self.pre_roll_s = pre_roll_s
        self.max_bytes = max_bytes
        self._gops: deque[list[Packet]] = deque()
        self._bytes = 0
        self._count = 0
        self._lock = threading.Lock()
        self._taps: list[PacketTap] = []
        self.packets_total = 0
        self.bytes_total = 0

    def configure(self, pre_roll_s: float) -> None:
        with self._lock:
            self.pre_roll_s = pre_roll_s

    def append(self, packet: Packet) -> None:
        size = len(packet.data)
        with self._lock:
            gops = self._gops
            if packet.key or not gops:
                gops.append([packet])
            else:
                gops[-1].append(packet)
            self._bytes += size
            self._count += 1
            self.packets_total += 1
            self.bytes_total += size
            self._trim(packet.at - self.pre_roll_s)
            if self._taps:
                self._taps = [tap for tap in self._taps if tap.offer(packet)]

    def _trim(self, cutoff: float) -> None:
        """Drop whole GOPs older than `cutoff` (keeping the keyframe before it); the byte bound wins."""
        gops = self._gops
        while gops:
            over = self._bytes > self.max_bytes
            if len(gops) == 1:
                if not over:
                    return
                # one endless GOP over the bound: without its keyframe the rest cannot be decoded
            elif not over and gops[1][0].at > cutoff:
                return
            dropped = gops.popleft()
            self._bytes -= sum(len(p.data) for p in dropped)
            self._count -= len(dropped)

    def since(self, at: float) -> list[Packet]:
        """Packets from the last keyframe at or before wall time `at` (else the oldest keyframe) to now."""
        with self._lock:
            return self._backlog(at)

    def _backlog(self, at: float) -> list[Packet]:
        gops = list(self._gops)
        start = 0
        for i in range(len(gops) - 1, -1, -1):
            if gops[i][0].at <= at:
                start = i
                break
        return [packet for gop in gops[start:] for packet in gop if gop[0].key]

    def tap(self, since: float | None = None, max_packets: int = 20_000) -> PacketTap:
        """A tap with the backlog from `since` (None: no backlog) and every later packet, atomically."""
        with self._lock:
            tap = PacketTap(self._backlog(since) if since is not None else [], max_packets)
            self._taps.append(tap)
            return tap

    def last_keyframe_packets(self) -> list[Packet]:
        """From the newest keyframe to now: what a decoder needs to catch up to the live edge."""
        with self._lock:
            if not self._gops or not self._gops[-1][0].key:
                return []
            return list(self._gops[-1])

    def close_taps(self) -> None:
        with self._lock:
            taps, self._taps = self._taps, []
        for tap in taps:
            tap.close()

    @property
    def span_s(self) -> float:
        with self._lock:
            if not self._gops:
                return 0.0
            return self._gops[-1][-1].at - self._gops[0][0].at

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return self._count
