"""Stage-1 test helpers: a tiny real video file and a fast-reconnecting Settings."""

from __future__ import annotations

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
