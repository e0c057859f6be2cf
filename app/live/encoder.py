"""JPEG encoding for live view. Blocking C work: call through asyncio.to_thread, never on the loop."""

from __future__ import annotations

import cv2
import numpy as np


def encode_jpeg(image: np.ndarray, quality: int, max_width: int) -> tuple[bytes, int, int]:
    """(JPEG bytes, width, height), downscaled to `max_width` (aspect kept) when the frame is wider."""
    height, width = image.shape[:2]
    if width > max_width:
        height = max(1, round(height * max_width / width))
        width = max_width
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"JPEG encode failed for a {width}x{height} frame")
    return buf.tobytes(), width, height
