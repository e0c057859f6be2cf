"""StreamSource: one PyAV demux thread per camera; packets first, pixels only when someone needs them.

    source = StreamSource(camera_id, url, settings, decode="gated", on_state=callback)
    sampler = Sampler(source, analysis_fps=5)      # plugs its FrameGate in
    source.start()
    source.ring                   # PacketRing: the last pre_roll_s of encoded packets (clips, recordings)
    source.set_live_demand(5.0)   # someone watches: decode every frame, convert 5 FPS at live_max_width
    source.set_pixel_demand(True) # an analyzer needs every frame (an event is open): decode every frame
    source.latest()               # newest converted Frame, for the live view and snapshots
    source.status()               # SourceStatus: state, rates, gate, counters, drops, masked last_error
    source.stop()                 # blocking, prompt; or `await source.aclose()` from the event loop

Every packet is demuxed (0.4 ms at 720p) and kept in the ring; what is decoded (5.5 ms a frame) follows
the camera's `decode` policy:
- `all`: every frame, as a classic NVR does.
- `gated` (default): while the `ActivityGate` says calm, keyframes only, and fewer still where packet
  sizes speak (see app/stream/activity.py); when it opens (a packet-size hint confirmed in pixels, or
  motion between keyframes), and while a viewer or analyzer asks for pixels, every frame: the decoder
  restarts at the last keyframe in the ring and catches up, so the first moving frames are analysed too.
- `keyframes`: keyframes only, unless a viewer or analyzer asks for pixels.
Decoded frames go to the analysis `FrameGate` (drop policy, one-slot hand-off) and, while watched, to
the live view; only what they take is converted to BGR, straight at their size (swscale does the
scaling and conversion in one pass). A packet not decoded is counted as drop reason `not_decoded`.

States: `connecting` (first open since `start()`), `streaming`, `reconnecting` (failed: open, read,
timeout; waiting out the backoff 1, 2, 4 ... s capped at `reconnect_max_delay`), `offline` (after
`OFFLINE_AFTER_FAILURES` attempts without a packet; still retrying), `stopped`. FFmpeg's own interrupt
timeouts bound every open and read (`open_timeout_s`, `read_timeout_s`), so a hung server is noticed;
a stream that delivers packets whose timestamps stop advancing is caught by the `stale_frame_s`
watchdog. Local files loop at their native rate.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import cv2
import numpy as np

from app.config import Settings
from app.kit.backoff import Backoff
from app.kit.rate import RateMeter, SumMeter
from app.kit.redact import mask_text, mask_url
from app.metrics import CAMERA_UP, FRAMES_IN, RECONNECTS
from app.stream.activity import GRID, THUMB_WIDTH, ActivityGate, GateState
from app.stream.drop_policy import DropCounter, DropReason, FrameGate
from app.stream.frame import Frame
from app.stream.packets import Packet, PacketRing, StreamInfo, make_template

log = logging.getLogger("argus.stream")

OFFLINE_AFTER_FAILURES = 3
DEFAULT_FILE_FPS = 15.0
PROBE_CHECK_FPS = 5.0  # pixel checks a second while a packet hint is being confirmed
ACTIVE_CHECK_FPS = 2.0  # while active: enough to see the motion end (hold_s is seconds)
REFRESH_LATEST_S = 1.0  # snapshots: convert a keyframe when the newest converted frame is older
SourceKind = Literal["rtsp", "http", "file"]
DecodePolicy = Literal["gated", "keyframes", "all"]
# Only what a camera URL may need: no concat:, subfile:, data:, pipe:, ... reachable from a URL.
PROTOCOL_WHITELIST = "file,rtsp,rtsps,rtp,srtp,udp,tcp,tls,http,https,httpproxy,crypto"


class SourceState(StrEnum):
    CONNECTING = "connecting"
    STREAMING = "streaming"
    RECONNECTING = "reconnecting"
    OFFLINE = "offline"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class SourceStatus:
    state: SourceState
    fps_in: float
    frames_in: int
    frames_converted: int  # BGR conversions: analysis + live; far fewer than frames_in by design
    reconnects: int
    last_frame_at: float | None  # epoch seconds
    last_error: str | None  # credentials masked
    drops: dict[str, int] = field(default_factory=dict)
    width: int | None = None  # the stream's own size, once known
    height: int | None = None
    decode: str = "gated"
    gate: str = "calm"
    decoded_fps: float = 0.0
    packets_per_s: float = 0.0
    bytes_per_s: float = 0.0
    gop_s: float | None = None
    frames_decoded: int = 0


def source_kind(url: str) -> SourceKind:
    """Classify a camera URL; ValueError for anything Argus cannot open."""
    lower = url.strip().lower()
    if lower.startswith(("rtsp://", "rtsps://")):
        return "rtsp"
    if lower.startswith(("http://", "https://")):
        return "http"
    if "://" in lower:
        raise ValueError("url must be rtsp://, rtsps://, http(s):// or a local video file path")
    try:
        is_file = Path(url).expanduser().is_file()
    except OSError:
        is_file = False
    if not is_file:
        raise ValueError("url is neither a stream URL nor an existing video file")
    return "file"


def fit_width(image: np.ndarray, max_width: int) -> np.ndarray:
    """Downscale to `max_width` keeping the aspect ratio; never upscales, never copies when it fits."""
    h, w = image.shape[:2]
    if w <= max_width:
        return image
    size = (max_width, max(1, round(h * max_width / w)))
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def fit_size(width: int, height: int, max_width: int) -> tuple[int, int]:
    """The (even) size a `width` x `height` frame is converted at to be at most `max_width` wide."""
    if width <= max_width:
        return width, height
    return max_width, max(2, round(height * max_width / width / 2) * 2)


def to_bgr(frame: av.VideoFrame, max_width: int) -> np.ndarray:
    """Scale and convert in one swscale pass (a full-size BGR conversion costs ~6 ms at 720p)."""
    w, h = fit_size(frame.width, frame.height, max_width)
    return frame.to_ndarray(format="bgr24", width=w, height=h)


def gray_thumbnail(frame: av.VideoFrame) -> np.ndarray:
    """The activity gate's thumbnail, area-averaged by swscale (0.12 ms at 720p; OpenCV's INTER_AREA
    at this non-integer ratio costs 1 ms)."""
    width = THUMB_WIDTH
    height = max(GRID[0], round(frame.height * width / frame.width))
    return frame.to_ndarray(format="gray", width=width, height=height, interpolation="AREA").astype(
        np.float32
    )


class Timeline:
    """Maps a connection's timestamps to wall-clock time: anchored on the first packet, re-anchored on
    arrival when they drift more than `MAX_DRIFT_S` (a timestamp jump, a camera clock running off)."""

    MAX_DRIFT_S = 2.0

    def __init__(self, seconds_per_tick: float) -> None:
        self._tick = seconds_per_tick
        self._anchor: tuple[int, float] | None = None  # (pts, wall time)

    def at(self, pts: int | None, wall: float) -> float:
        if pts is None:
            return wall
        if self._anchor is None:
            self._anchor = (pts, wall)
            return wall
        at = self._anchor[1] + (pts - self._anchor[0]) * self._tick
        if abs(at - wall) > self.MAX_DRIFT_S:
            self._anchor = (pts, wall)
            return wall
        return at


class StreamSource:
    def __init__(
        self,
        camera_id: int,
        url: str,
        settings: Settings,
        *,
        on_state: Callable[[SourceState], None] | None = None,
        decode: DecodePolicy | str = "gated",
        rtsp_transport: str = "tcp",
        pre_roll_s: float = 5.0,
    ) -> None:
        self.camera_id = camera_id
        self.kind = source_kind(url)
        self._url = str(Path(url).expanduser()) if self.kind == "file" else url
        self.masked_url = mask_url(url)
        self._settings = settings
        self._on_state = on_state
        self.decode: str = decode
        self.rtsp_transport = rtsp_transport
        label = str(camera_id)
        self.drops = DropCounter(label)
        self.fps_in = RateMeter()
        self.decoded = RateMeter()
        self.byte_rate = SumMeter()
        self.ring = PacketRing(camera_id, pre_roll_s, settings.ring_max_mb * 1024 * 1024)
        self.activity = ActivityGate(
            hold_s=settings.gate_hold_s,
            min_hint_bytes=settings.gate_min_hint_bytes,
            informative_check_s=settings.gate_calm_check_s,
        )
        self._m_frames = FRAMES_IN.labels(label)
        self._m_reconnects = RECONNECTS.labels(label)
        self._m_up = CAMERA_UP.labels(label)
        self._gate: FrameGate | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = SourceState.STOPPED
        self._latest: Frame | None = None
        self._live_period = 0.0  # seconds between live conversions; 0 = nobody watches
        self._live_next = 0.0
        self._pixel_demand = False
        self.gate_opens: deque[float] = deque(maxlen=100)  # stream (wall) time of each calm -> active
        self._seq = 0
        self._generation = 0
        self.frames_converted = 0
        self.reconnects = 0
        self._last_frame_at: float | None = None
        self._last_error: str | None = None
        self._size: tuple[int, int] | None = None
        # demux-thread state of the current connection
        self._codec: Any = None
        self._in_sync = False  # the decoder has seen every packet since the last keyframe
        self._next_check = 0.0

    # -- control (any thread) --

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("source already started")
        self._stop.clear()
        self._set_state(SourceState.CONNECTING)
        self._thread = threading.Thread(target=self._run, name=f"argus.capture:{self.camera_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop and join. Prompt unless FFmpeg is inside an open/read, which its timeouts bound."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            limit = timeout or max(self._settings.open_timeout_s, self._settings.read_timeout_s) + 2
            thread.join(limit)
            if thread.is_alive():
                log.warning("camera %s: capture thread still busy after %.0f s", self.camera_id, limit)
        self.ring.close_taps()
        self._set_state(SourceState.STOPPED)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.stop)

    def set_gate(self, gate: FrameGate | None) -> None:
        """Plug the analysis gate in (the Sampler does this); None = no analysis conversions."""
        self._gate = gate

    def set_live_demand(self, fps: float) -> None:
        """Decode every frame and convert `fps` a second at `live_max_width`; 0 when unwatched."""
        self._live_period = 1.0 / fps if fps > 0 else 0.0

    def set_pixel_demand(self, wanted: bool) -> None:
        """An analyzer needs every frame (an event is open): decode all until released."""
        self._pixel_demand = bool(wanted)

    def set_decode(self, decode: DecodePolicy | str) -> None:
        """Change the decode policy of a running camera (PATCH) without reconnecting."""
        self.decode = decode

    def latest(self) -> Frame | None:
        """The newest converted frame: live-sized while watched, else the newest analysed/checked one."""
        return self._latest

    @property
    def state(self) -> SourceState:
        return self._state

    @property
    def gate_state(self) -> str:
        if self.decode == "all" or self.activity.state is GateState.ACTIVE:
            return "active"
        return "calm"

    def status(self) -> SourceStatus:
        size = self._size
        gop = self.activity.gop_s
        return SourceStatus(
            state=self._state,
            fps_in=round(self.fps_in.rate(), 2),
            frames_in=self.fps_in.total,
            frames_converted=self.frames_converted,
            reconnects=self.reconnects,
            last_frame_at=self._last_frame_at,
            last_error=self._last_error,
            drops=self.drops.snapshot(),
            width=size[0] if size else None,
            height=size[1] if size else None,
            decode=self.decode,
            gate=self.gate_state,
            decoded_fps=round(self.decoded.rate(), 2),
            packets_per_s=round(self.fps_in.rate(), 2),
            bytes_per_s=round(self.byte_rate.rate(), 1),
            gop_s=round(gop, 2) if gop is not None else None,
            frames_decoded=self.decoded.total,
        )

    # -- demux thread --

    def _run(self) -> None:
        log.info("camera %s: capture started (%s)", self.camera_id, self.masked_url)
        s = self._settings
        backoff = Backoff(initial=s.reconnect_initial_delay, cap=s.reconnect_max_delay)
        failures = 0
        try:
            while not self._stop.is_set():
                if self._attempt():
                    backoff.reset()
                    failures = 0
                if self._stop.is_set():
                    break
                failures += 1
                lost = SourceState.OFFLINE if failures >= OFFLINE_AFTER_FAILURES else SourceState.RECONNECTING
                self._set_state(lost)
                if self._stop.wait(backoff.next_delay()):
                    break
                self.reconnects += 1
                self._m_reconnects.inc()
        except Exception as exc:  # a bug, not a camera failure: say so loudly, keep the URL masked
            self._error(f"capture crashed: {exc!r}")
            log.exception("camera %s: capture thread crashed", self.camera_id)
        finally:
            log.info("camera %s: capture exited (%s)", self.camera_id, self.masked_url)

    def _open(self) -> Any:
        s = self._settings
        options = {"protocol_whitelist": PROTOCOL_WHITELIST}
        if self.kind == "rtsp":
            options |= {
                "rtsp_transport": self.rtsp_transport,
                "analyzeduration": "500000",
                "probesize": "500000",
            }
        try:
            return av.open(self._url, "r", options=options, timeout=(s.open_timeout_s, s.read_timeout_s))
        except (av.FFmpegError, OSError, ValueError) as exc:
            self._error(f"cannot open {self.masked_url}: {_reason(exc)}")
            return None

    def _attempt(self) -> bool:
        """Open and demux until the stream fails; True when at least one packet arrived."""
        got = False
        while not self._stop.is_set():
            container = self._open()
            if container is None:
                return got
            try:
                got = self._demux(container) or got
            finally:
                container.close()
                self._codec = None
                self._m_up.set(0)
            if self.kind != "file" or not got:
                return got
            # end of file: start over, without backoff (files loop forever)
        return got

    def _demux(self, container: Any) -> bool:
        if not container.streams.video:
            self._error("no video stream")
            return False
        stream = container.streams.video[0]
        s = self._settings
        stream.codec_context.thread_count = s.decode_threads  # 1: no frame delay, least overhead per camera
        self._codec = stream.codec_context
        self._in_sync = False
        # The ring and the gate's references outlive a reconnect or a file's loop: same camera, same
        # scene; packets carry their connection's StreamInfo (generation) for writers that care.
        is_file = self.kind == "file"
        time_base = stream.time_base or Fraction(1, 90_000)
        rate = float(stream.average_rate) if stream.average_rate else None
        interval = 1.0 / rate if is_file and rate and 1 <= rate <= 240 else 1.0 / DEFAULT_FILE_FPS
        timeline = Timeline(float(time_base))
        info: StreamInfo | None = None
        got = False
        due = last_fresh = time.monotonic()
        last_pts: int | None = None
        try:
            for packet in container.demux(stream):
                if self._stop.is_set():
                    break
                if packet.size == 0:
                    continue
                if is_file:  # files play at their native rate, paced by the wall clock
                    wait = due - time.monotonic()
                    if wait > 0 and self._stop.wait(wait):
                        break
                    due = max(due + interval, time.monotonic() - 1.0)
                now = time.monotonic()
                wall = time.time()
                pts = packet.pts if packet.pts is not None else packet.dts
                if pts is None or pts != last_pts:  # no timestamps (some MJPEG): arrival is all we know
                    last_fresh, last_pts = now, pts
                elif now - last_fresh >= s.stale_frame_s:
                    self._error(f"no new frame for {now - last_fresh:.1f} s (stale stream)")
                    return got
                if info is None:
                    if not packet.is_keyframe:
                        self.drops.add(DropReason.NOT_DECODED)  # nothing decodes before the first keyframe
                        continue
                    self._generation += 1
                    info = self._stream_info(stream, packet, time_base, rate)
                at = timeline.at(pts, wall)
                kept = Packet(
                    bytes(packet), packet.pts, packet.dts, packet.duration or 0, packet.is_keyframe, at, info
                )
                self.ring.append(kept)
                if not got:
                    got = True
                    self._size = (info.width, info.height)
                    self._set_state(SourceState.STREAMING)
                    self._m_up.set(1)
                self._on_packet(kept, now)
        except (av.FFmpegError, OSError) as exc:
            if not (is_file and got):
                self._error(f"read failed: {_reason(exc)}")
            return got
        if not self._stop.is_set() and not is_file:
            self._error("stream ended")
        return got

    def _stream_info(self, stream: Any, keyframe: Any, time_base: Fraction, rate: float | None) -> StreamInfo:
        ctx = stream.codec_context
        return StreamInfo(
            camera_id=self.camera_id,
            generation=self._generation,
            codec=ctx.name,
            width=ctx.width,
            height=ctx.height,
            time_base=time_base,
            fps=rate,
            template=make_template(stream, keyframe),
        )

    # -- per packet: count, gate, decode what is needed --

    def _on_packet(self, packet: Packet, now: float) -> None:
        self._seq += 1
        self.fps_in.tick()
        self.byte_rate.add(packet.size)
        self._m_frames.inc()
        self._last_frame_at = packet.at
        gate = self.activity
        gate.observe_packet(packet.size, packet.key, now)  # sizes and GOP length, whatever the policy
        gate.tick(now)
        if self._wants_every_frame():
            if not self._in_sync:
                self._catch_up(now)
            else:
                self._decode(packet, now)
            return
        self._in_sync = False
        due = packet.key and (self.decode != "gated" or gate.keyframe_due(now))
        if not due:
            self.drops.add(DropReason.NOT_DECODED)
            return
        self._decode(packet, now, drain=True)

    def _wants_every_frame(self) -> bool:
        if self.decode == "all" or self._live_period > 0 or self._pixel_demand:
            return True
        return self.decode == "gated" and (self.activity.decoding_all or self.activity.long_gop)

    def _catch_up(self, now: float) -> None:
        """Restart the decoder at the last keyframe in the ring and decode up to the live edge."""
        backlog = self.ring.last_keyframe_packets()
        self._codec.flush_buffers()
        self._in_sync = True
        for packet in backlog:
            self._decode(packet, now)

    def _decode(self, packet: Packet, now: float, drain: bool = False) -> None:
        """Decode one packet; `drain`: a lone keyframe, get its picture out now and reset the decoder."""
        codec = self._codec
        try:
            frames = codec.decode(packet.to_av(None))
            if drain:
                frames += codec.decode(None)
                codec.flush_buffers()
        except av.FFmpegError as exc:
            self.drops.add(DropReason.DECODE_FAILED)
            self._in_sync = False
            log.debug("camera %s: decode failed: %s", self.camera_id, exc)
            return
        if not frames:
            return
        for frame in frames:
            self.decoded.tick()
            self._on_frame(frame, packet, now)

    def _on_frame(self, image: av.VideoFrame, packet: Packet, now: float) -> None:
        seq = self._seq
        if self.decode == "gated" and (packet.key or now >= self._next_check):
            # probing: 5 checks a second to confirm fast; active: 2 are enough to see it end
            active = self.activity.state is GateState.ACTIVE
            self._next_check = now + 1.0 / (ACTIVE_CHECK_FPS if active else PROBE_CHECK_FPS)
            was = self.activity.state
            self.activity.observe_frame(gray_thumbnail(image), now)
            if self.activity.state is GateState.ACTIVE and was is not GateState.ACTIVE:
                self.gate_opens.append(packet.at)
        gate = self._gate
        analysis = gate is not None and gate.wants(seq, now, packet.key if gate.needs_keyframes else None)
        live = self._live_period > 0 and now >= self._live_next
        latest = self._latest
        refresh = (  # keep the snapshot fresh while nothing else converts: a keyframe now and then
            packet.key
            and not (analysis or live)
            and (latest is None or packet.at - latest.captured_at >= REFRESH_LATEST_S)
        )
        if not (analysis or live or refresh):
            return
        s = self._settings
        at = packet.at
        w, h = image.width, image.height
        if live:
            self._live_next += self._live_period
            if self._live_next <= now:  # first frame or a stall: resync instead of bursting
                self._live_next = now + self._live_period
            self._latest = Frame(self.camera_id, seq, at, self._convert(image, s.live_max_width), w, h)
        if analysis or refresh:
            frame = Frame(self.camera_id, seq, at, self._convert(image, s.analysis_width), w, h)
            if not live:
                self._latest = frame  # the snapshot stays fresh while calm: one per checked keyframe
            if analysis and gate is not None:
                gate.deliver(frame, now)

    def _convert(self, image: av.VideoFrame, width: int) -> np.ndarray:
        self.frames_converted += 1
        return to_bgr(image, width)

    def _set_state(self, state: SourceState) -> None:
        if state is self._state or (self._stop.is_set() and state is not SourceState.STOPPED):
            return
        self._state = state
        if state is SourceState.STREAMING:
            self._last_error = None
        log.info("camera %s: %s (%s)", self.camera_id, state, self.masked_url)
        if self._on_state is not None:
            try:
                self._on_state(state)
            except Exception:
                log.exception("camera %s: state listener failed", self.camera_id)

    def _error(self, message: str) -> None:
        self._last_error = mask_text(message)
        log.warning("camera %s: %s", self.camera_id, self._last_error)


def _reason(exc: BaseException) -> str:
    """FFmpeg's message without the URL it may quote (the caller names the camera, masked)."""
    text = getattr(exc, "strerror", None) or type(exc).__name__
    return mask_text(str(text))


__all__ = [
    "OFFLINE_AFTER_FAILURES",
    "SourceState",
    "SourceStatus",
    "StreamSource",
    "fit_width",
    "source_kind",
]
