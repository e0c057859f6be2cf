"""Publisher: one thread encodes frames to H.264 (PyAV, libx264) and pushes them to an RTSP or RTMP server.

Fed through a one-slot mailbox: when encoding falls behind, the older frame is dropped and counted, never
queued. When the server goes away (or is not there yet) the thread closes its output and opens it again
with exponential backoff. stop() finishes the stream (the encoder is flushed) and joins the thread.
"""

from __future__ import annotations

import fractions
import logging
import threading
import time
from typing import Any

import av
import numpy as np

from app.kit.backoff import Backoff
from app.kit.redact import mask_text, mask_url

log = logging.getLogger("argus.restream")


def output_format(url: str) -> str:
    return "flv" if url.lower().startswith("rtmp") else "rtsp"


class Publisher:
    def __init__(self, url: str, fps: float, *, name: str, backoff: Backoff | None = None) -> None:
        self.url = url
        self.fps = fps
        self._name = name
        self._backoff = backoff or Backoff(initial=1.0, cap=10.0)
        self._slot: np.ndarray | None = None
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"argus.restream:{name}", daemon=True)
        self.sent = 0
        self.dropped = 0
        self.restarts = 0
        self.connected = False
        self.last_error: str | None = None
        self.cpu_s = 0.0  # thread CPU spent encoding and sending (the cost per stream)

    def start(self) -> Publisher:
        self._thread.start()
        return self

    def offer(self, image: np.ndarray) -> None:
        """Non-blocking: the newest frame replaces one the encoder has not taken yet."""
        with self._cond:
            if self._slot is not None:
                self.dropped += 1
            self._slot = image
            self._cond.notify()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout)

    def _take(self) -> np.ndarray | None:
        with self._cond:
            while self._slot is None and not self._stopping:
                self._cond.wait()
            image, self._slot = self._slot, None
            return image

    def _run(self) -> None:
        log.info("restream %s to %s started", self._name, mask_url(self.url))
        while not self._stopping:
            try:
                self._stream()
            except Exception as exc:  # the server went away, refused us, or is not up yet
                self.connected = False
                self.last_error = mask_text(f"{type(exc).__name__}: {exc}")[:300]
                log.warning("restream %s: %s (retrying)", self._name, self.last_error)
                self.restarts += 1
                delay = self._backoff.next_delay()
                with self._cond:
                    self._cond.wait_for(lambda: self._stopping, delay)
        log.info("restream %s stopped (%d frames sent, %d dropped)", self._name, self.sent, self.dropped)

    def _stream(self) -> None:
        image = self._take()
        if image is None:
            return
        h, w = image.shape[:2]
        options = {"rtsp_transport": "tcp"} if output_format(self.url) == "rtsp" else {}
        container: Any = av.open(self.url, "w", format=output_format(self.url), options=options, timeout=5)
        try:
            stream = container.add_stream("libx264", rate=round(self.fps))
            stream.width, stream.height, stream.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
            stream.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(max(1, round(self.fps)))}
            self.connected, self.last_error = True, None
            self._backoff.reset()
            base, rate, pts = time.monotonic(), round(self.fps), -1
            while image is not None:
                started = time.thread_time()
                frame = av.VideoFrame.from_ndarray(image[: stream.height, : stream.width], format="bgr24")
                # pts on the wall clock in frame periods: a dropped frame leaves a gap, never speeds it up
                pts = max(pts + 1, round((time.monotonic() - base) * rate))
                frame.pts, frame.time_base = pts, fractions.Fraction(1, rate)
                for packet in stream.encode(frame):
                    container.mux(packet)
                self.sent += 1
                self.cpu_s += time.thread_time() - started
                image = self._take()
            for packet in stream.encode():  # stopping: flush what the encoder holds
                container.mux(packet)
        finally:
            self.connected = False
            container.close()

    def stats(self) -> dict[str, Any]:
        return {
            "url": mask_url(self.url),
            "connected": self.connected,
            "sent": self.sent,
            "dropped": self.dropped,
            "restarts": self.restarts,
            "cpu_s": round(self.cpu_s, 3),
            "last_error": self.last_error,
        }
