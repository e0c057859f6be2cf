"""JPEG encoding, in one place (event snapshots, live view). Blocking C work: call through a thread."""

from __future__ import annotations

import cv2
import numpy as np


def encode_jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    """A BGR frame as JPEG bytes; ValueError when OpenCV cannot encode it."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        height, width = image.shape[:2]
        raise ValueError(f"JPEG encoding failed for a {width}x{height} frame")
    return buf.tobytes()


def fit_width(image: np.ndarray, max_width: int) -> np.ndarray:
    """`image` downscaled to `max_width` (aspect kept) when it is wider; else `image` itself."""
    height, width = image.shape[:2]
    if width <= max_width:
        return image
    height = max(1, round(height * max_width / width))
    return cv2.resize(image, (max_width, height), interpolation=cv2.INTER_AREA)
