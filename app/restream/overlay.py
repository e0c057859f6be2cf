"""Overlays drawn on a re-streamed frame (in place, OpenCV): boxes, zones, a timestamp, the event score."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

OVERLAYS = ("boxes", "zones", "timestamp", "score")
BOX_BGR = (0, 255, 0)  # green: what a test looks for where a box is
ZONE_BGR = (255, 160, 0)
TEXT_BGR = (255, 255, 255)


@dataclass
class Annotations:
    """What is known about a camera now: its latest boxes (source pixels), zones (normalised), score."""

    boxes: list[dict[str, Any]] = field(default_factory=list)
    source_size: tuple[int, int] = (0, 0)  # the (width, height) the boxes are in
    zones: list[Sequence[Sequence[float]]] = field(default_factory=list)
    score: float | None = None


def draw(image: np.ndarray, notes: Annotations, overlays: Sequence[str], at: float | None = None) -> None:
    h, w = image.shape[:2]
    if "zones" in overlays:
        for zone in notes.zones:
            points = np.array([[x * w, y * h] for x, y in zone], np.int32)
            cv2.polylines(image, [points], True, ZONE_BGR, 2)
    if "boxes" in overlays and notes.source_size[0] and notes.source_size[1]:
        sx, sy = w / notes.source_size[0], h / notes.source_size[1]
        for det in notes.boxes:
            x1, y1, x2, y2 = det["box"]
            p1, p2 = (int(x1 * sx), int(y1 * sy)), (int(x2 * sx), int(y2 * sy))
            cv2.rectangle(image, p1, p2, BOX_BGR, 2)
            label = f"{det.get('label', '')} {det.get('score', 0):.2f}".strip()
            cv2.putText(image, label, (p1[0], max(12, p1[1] - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, BOX_BGR, 1)
    lines = []
    if "timestamp" in overlays:
        lines.append(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at or time.time())))
    if "score" in overlays and notes.score is not None:
        lines.append(f"score {notes.score:.2f}")
    for i, line in enumerate(lines):
        cv2.putText(image, line, (8, 20 + 20 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.55, TEXT_BGR, 1, cv2.LINE_AA)
