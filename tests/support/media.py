"""Real video files for tests, written with OpenCV: a static scene, or one with a burst of motion.

A file used as a camera URL must be inside ARGUS_MEDIA_DIR: write it at `media_path(settings, name)`.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from app.config import Settings


def media_path(settings: Settings, name: str) -> Path:
    """Where a test video used as a camera goes: inside the settings' media directory (created)."""
    folder = settings.resolved_media_dir
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def write_video(
    path: Path,
    seconds: float,
    fps: int = 15,
    size: tuple[int, int] = (320, 240),
    motion: tuple[float, float] | None = None,
) -> Path:
    """MJPG .avi of a textured static background; with `motion=(start_s, end_s)` a bright block crosses."""
    w, h = size
    rng = np.random.default_rng(7)
    background = cv2.GaussianBlur(rng.integers(60, 120, (h, w, 3), dtype=np.uint8), (9, 9), 0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened(), "OpenCV cannot write MJPG here"
    for i in range(int(seconds * fps)):
        frame = background.copy()
        t = i / fps
        if motion and motion[0] <= t < motion[1]:
            x = int((t - motion[0]) / (motion[1] - motion[0]) * (w - 60))
            cv2.rectangle(frame, (x, h // 3), (x + 60, h // 3 + 80), (255, 255, 255), -1)
        writer.write(frame)
    writer.release()
    return path
