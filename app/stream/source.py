"""OpenCVSource: one capture thread per camera that decodes every frame and converts only those needed.

    source = OpenCVSource(camera_id, url, settings, on_state=callback)  # callback(state), capture thread
    sampler = Sampler(source, analysis_fps=5)                          # plugs its FrameGate in
    source.start()
    source.set_live_demand(5.0)   # someone watches: also convert 5 FPS at live_max_width; 0 = nobody
    source.latest()               # newest converted Frame (live or analysis), for the live view/snapshots
    source.status()               # SourceStatus: state, fps_in, counters, drops, masked last_error
    source.stop()                 # blocking, prompt; or `await source.aclose()` from the event loop

Every frame is decoded with `grab()` (H.264 needs it); `retrieve()` (the costly YUV->BGR conversion) runs
only for frames the analysis gate or the live view wants (with `keyframe_burst`, the gate is also told
whether FFmpeg flagged the frame's packet as a keyframe), and the result is resized with INTER_LINEAR
(a tenth of INTER_AREA's cost at 4x). Measured here on 720p I420: grab 1.3 ms, retrieve 0.9-1.2 ms,
resize to 320 wide 0.16 ms. Asking FFmpeg for unconverted pixels (`CAP_PROP_CONVERT_RGB=0`) is slower
in this OpenCV 5 build (4-5 ms, and only the Y plane), so it is not used.

States:
- `connecting`: first open since `start()`, until the first frame.
- `streaming`: frames are arriving.
- `reconnecting`: the stream failed (open failed, read failed, or stale) and the source is waiting out
  its backoff (1, 2, 4 ... s capped at `reconnect_max_delay`) or re-opening.
- `offline`: `OFFLINE_AFTER_FAILURES` consecutive attempts have failed without a frame (about 7 s of
  outage with the default backoff); still retrying forever, back to `streaming` on the first frame.
- `stopped`: after `stop()`.

A hung server (socket open, nothing sent) makes `grab()` return old buffered frames once per read
timeout; a grab that needed most of the read timeout does not count as fresh, and no fresh frame for
`stale_frame_s` forces a reconnect. `reconnects` counts re-open attempts after a failure.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from app.config import Settings
from app.kit.backoff import Backoff
from app.kit.rate import RateMeter
from app.kit.redact import mask_text, mask_url
from app.metrics import CAMERA_UP, FRAMES_IN, RECONNECTS
from app.stream.drop_policy import DropCounter, DropReason, FrameGate
from app.stream.frame import Frame

log = logging.getLogger("argus.stream")

OFFLINE_AFTER_FAILURES = 3
FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
# TCP interleaving survives NAT and loss; small probes cut the open from ~2 s to ~0.8 s (TESTING.md).
DEFAULT_FFMPEG_OPTIONS = "rtsp_transport;tcp|analyzeduration;500000|probesize;500000"
DEFAULT_FILE_FPS = 15.0
SourceKind = Literal["rtsp", "http", "file"]


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
    frames_converted: int  # retrieve() calls: analysis + live; far fewer than frames_in by design
    reconnects: int
    last_frame_at: float | None  # epoch seconds
    last_error: str | None  # credentials masked
    drops: dict[str, int] = field(default_factory=dict)
    width: int | None = None  # the stream's own size, once known
    height: int | None = None


def source_kind(url: str) -> SourceKind:
    """Classify a camera URL; ValueError for anything Argus cannot open."""
    lower = url.strip().lower()
    if lower.startswith(("rtsp://", "rtsps://")):
        return "rtsp"
    if lower.startswith(("http://", "https://")):
        return "http"
    if "://" in lower:
        raise ValueError("url must be rtsp://, rtsps://, http(s):// or a local video file path")
    if not Path(url).expanduser().is_file():
        raise ValueError("url is neither a stream URL nor an existing video file")
    return "file"


def ensure_ffmpeg_options() -> None:
    """Set the FFmpeg capture options for streams, unless the user set their own."""
    os.environ.setdefault(FFMPEG_OPTIONS_ENV, DEFAULT_FFMPEG_OPTIONS)


def quiet_opencv() -> None:
    """OpenCV's FFmpeg backend warns on stderr for every undecodable frame ("retrieveFrame Picture does
    not contain data") during reconnects; the source reports those itself, in its status and log."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def fit_width(image: np.ndarray, max_width: int) -> np.ndarray:
    """Downscale to `max_width` keeping the aspect ratio; never upscales, never copies when it fits."""
    h, w = image.shape[:2]
    if w <= max_width:
        return image
    size = (max_width, max(1, round(h * max_width / w)))
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


# FFmpeg's AV_PKT_FLAG_KEY of the packet the last grab() decoded (OpenCV >= 4.5; 1.0 on a keyframe).
# Verified on this OpenCV 5 build against the GStreamer RTSP fixture: set on every key-int-max-th frame.
_KEY_FLAG: int | None = getattr(cv2, "CAP_PROP_LRF_HAS_KEY_FRAME", None)


def _is_keyframe(cap: Any) -> bool | None:
    """True/False after grab(); None when this OpenCV build cannot tell (the gate then falls back)."""
    return None if _KEY_FLAG is None else cap.get(_KEY_FLAG) > 0


class OpenCVSource:
    def __init__(
        self,
        camera_id: int,
        url: str,
        settings: Settings,
        *,
        on_state: Callable[[SourceState], None] | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.kind = source_kind(url)
        self._url = str(Path(url).expanduser()) if self.kind == "file" else url
        self.masked_url = mask_url(url)
        self._settings = settings
        self._on_state = on_state
        label = str(camera_id)
        self.drops = DropCounter(label)
        self.fps_in = RateMeter()
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
        self._seq = 0
        self.frames_converted = 0
        self.reconnects = 0
        self._last_frame_at: float | None = None
        self._last_error: str | None = None
        self._size: tuple[int, int] | None = None

    # -- control (any thread) --

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("source already started")
        if self.kind != "file":
            ensure_ffmpeg_options()
        quiet_opencv()
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
        self._set_state(SourceState.STOPPED)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.stop)

    def set_gate(self, gate: FrameGate | None) -> None:
        """Plug the analysis gate in (the Sampler does this); None = no analysis conversions."""
        self._gate = gate

    def set_live_demand(self, fps: float) -> None:
        """Also convert `fps` frames a second at `live_max_width` for the live view; 0 when unwatched."""
        self._live_period = 1.0 / fps if fps > 0 else 0.0

    def latest(self) -> Frame | None:
        """The newest converted frame: live-sized while watched, else the newest analysis frame."""
        return self._latest

    @property
    def state(self) -> SourceState:
        return self._state

    def status(self) -> SourceStatus:
        size = self._size
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
        )

    # -- capture thread --

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
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(s.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(s.read_timeout_s * 1000),
        ]
        cap = cv2.VideoCapture(self._url, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            self._error(f"cannot open {self.masked_url}")
            return None
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 2)
        return cap

    def _attempt(self) -> bool:
        """Open and read until the stream fails; True when at least one frame arrived."""
        cap = self._open()
        if cap is None:
            return False
        try:
            got = self._read(cap)
            while got and self.kind == "file" and not self._stop.is_set():
                cap.release()  # end of file: start over, without backoff (files loop forever)
                cap = self._open()
                if cap is None:
                    break
                got = self._read(cap)
            return got
        finally:
            if cap is not None:
                cap.release()
            self._m_up.set(0)

    def _read(self, cap: Any) -> bool:
        s = self._settings
        is_file = self.kind == "file"
        fps = cap.get(cv2.CAP_PROP_FPS)
        interval = 1.0 / fps if is_file and 1 <= fps <= 240 else 1.0 / DEFAULT_FILE_FPS
        slow = 0.9 * s.read_timeout_s
        got = False
        due = last_fresh = time.monotonic()
        while not self._stop.is_set():
            if is_file:  # files play at their native FPS, paced by the wall clock
                wait = due - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    break
                due = max(due + interval, time.monotonic() - 1.0)
            started = time.monotonic()
            if not cap.grab():
                if not (is_file and got):
                    self._error("end of stream" if is_file else "read failed or stream ended")
                return got
            now = time.monotonic()
            if now - started < slow:
                last_fresh = now
            elif now - last_fresh >= s.stale_frame_s:
                self._error(f"no new frame for {now - last_fresh:.1f} s (stale stream)")
                return got
            if not got:
                got = True
                self._size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
                self._set_state(SourceState.STREAMING)
                self._m_up.set(1)
            self._on_frame(cap, now)
        return got

    def _on_frame(self, cap: Any, now: float) -> None:
        self._seq += 1
        seq = self._seq
        self.fps_in.tick()
        self._m_frames.inc()
        self._last_frame_at = time.time()
        gate = self._gate
        analysis = gate is not None and gate.wants(
            seq, now, _is_keyframe(cap) if gate.needs_keyframes else None
        )
        live = self._live_period > 0 and now >= self._live_next
        if not (analysis or live):
            return
        ok, image = cap.retrieve()
        self.frames_converted += 1
        if not ok or image is None:
            if analysis:
                self.drops.add(DropReason.CONVERT_FAILED)
            return
        h, w = image.shape[:2]
        at = self._last_frame_at
        if live:
            self._live_next += self._live_period
            if self._live_next <= now:  # first frame or a stall: resync instead of bursting
                self._live_next = now + self._live_period
            live_image = fit_width(image, self._settings.live_max_width)
            self._latest = Frame(self.camera_id, seq, at, live_image, w, h)
        if analysis and gate is not None:
            frame = Frame(self.camera_id, seq, at, fit_width(image, self._settings.analysis_width), w, h)
            if not live:
                self._latest = frame
            gate.deliver(frame, now)

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


__all__ = [
    "OFFLINE_AFTER_FAILURES",
    "OpenCVSource",
    "SourceState",
    "SourceStatus",
    "ensure_ffmpeg_options",
    "fit_width",
    "source_kind",
]
