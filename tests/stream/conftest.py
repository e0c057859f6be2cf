"""Stage-1 test helpers: a tiny real video file and a fast-reconnecting Settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.config import Settings


def write_video(path: Path, seconds: float = 1.0, fps: int = 15, size: tuple[int, int] = (320, 180)) -> Path:
    """A real mp4v file: a square crossing a grey background."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    frames = round(seconds * fps)
    for i in range(frames):
        image = np.full((h, w, 3), 90, np.uint8)
        x = int(i * (w - 20) / max(1, frames - 1))
        cv2.rectangle(image, (x, h // 2 - 10), (x + 20, h // 2 + 10), (0, 0, 255), -1)
        writer.write(image)
    writer.release()
    return path


@pytest.fixture
def video_file(tmp_path: Path) -> Path:
    return write_video(tmp_path / "clip.mp4")


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    """Short backoff and timeouts so outage tests take seconds."""
    return settings.model_copy(
        update={
            "reconnect_initial_delay": 0.2,
            "reconnect_max_delay": 1.0,
            "open_timeout_s": 3.0,
            "read_timeout_s": 2.0,
            "stale_frame_s": 2.0,
        }
    )


class MjpegServer:
    """A tiny MJPEG-over-HTTP camera (multipart/x-mixed-replace), like many cheap IP cameras serve."""

    def __init__(self, fps: float = 10.0, size: tuple[int, int] = (160, 120)) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self._stop = threading.Event()
        stop, frames = self._stop, self._frames(size)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                i = 0
                try:
                    while not stop.wait(1 / fps):
                        jpeg = frames[i % len(frames)]
                        i += 1
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\n"
                            + f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                            + jpeg
                            + b"\r\n"
                        )
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="mjpeg-server", daemon=True)

    @staticmethod
    def _frames(size: tuple[int, int]) -> list[bytes]:
        w, h = size
        out = []
        for i in range(10):
            image = np.full((h, w, 3), 60, np.uint8)
            cv2.circle(image, (10 + i * (w - 20) // 9, h // 2), 8, (0, 255, 0), -1)
            out.append(cv2.imencode(".jpg", image)[1].tobytes())
        return out

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/video.mjpg"

    def __enter__(self) -> MjpegServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def mjpeg_server() -> Iterator[MjpegServer]:
    with MjpegServer() as server:
        yield server
