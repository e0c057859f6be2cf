"""Where to run the detector: motion boxes from frame differences, planned into a few square regions.

Frigate's lever: most of a camera's pixels are still most of the time, so the detector looks only where
something changed. `MotionBoxes` diffs each analysed frame against the previous one at a small size
(a blur, a threshold, a dilation, connected components: ~0.3 ms at 160 px wide); `plan_regions` pads
each box, squares it (the model's aspect), merges overlapping ones and gives up (full frame) when the
regions would cover most of the picture anyway. The VAD's own regions are cells of learned surprise, not
motion, and only exist once it has learned: they do not fit, so this module measures motion itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

Box = tuple[float, float, float, float]  # x1, y1, x2, y2
Region = tuple[int, int, int, int]  # pixel xyxy in the analysed image, square


@dataclass
class MotionBoxes:
    """Boxes (normalised 0..1) of what changed since the previous frame; None for the first frame."""

    width: int = 160
    threshold: int = 18  # grey levels: above sensor noise and compression flicker at this size
    min_area: float = 0.0008  # of the frame: a person far away at 160 px is about 3 x 8 px
    _prev: np.ndarray | None = field(default=None, repr=False)

    def update(self, image: np.ndarray) -> list[Box] | None:
        h, w = image.shape[:2]
        small_h = max(1, round(h * self.width / w))
        grey = cv2.cvtColor(cv2.resize(image, (self.width, small_h), interpolation=cv2.INTER_AREA),
                            cv2.COLOR_BGR2GRAY)  # fmt: skip
        grey = cv2.GaussianBlur(grey, (5, 5), 0)
        prev, self._prev = self._prev, grey
        if prev is None or prev.shape != grey.shape:
            return None
        mask: np.ndarray = (cv2.absdiff(grey, prev) > self.threshold).astype(np.uint8)
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=2)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        min_px = self.min_area * self.width * small_h
        boxes: list[Box] = []
        for x, y, bw, bh, area in stats[1:count]:
            if area >= min_px:
                boxes.append((x / self.width, y / small_h, (x + bw) / self.width, (y + bh) / small_h))
        return boxes


def plan_regions(
    boxes: list[Box],
    size: tuple[int, int],
    *,
    min_side: int,
    pad: float = 0.15,
    max_regions: int = 4,
    max_cover: float = 0.6,
) -> list[Region] | None:
    """Square regions (pixels of an image of `size` = (w, h)) covering every box, padded by `pad` of its
    size and at least `min_side`; overlapping ones merged. None when a full frame is the better buy:
    more than `max_regions`, or together more than `max_cover` of the frame."""
    w, h = size
    regions = [_square(b[0] * w, b[1] * h, b[2] * w, b[3] * h, pad, min_side, size) for b in boxes]
    merged = True
    while merged:
        merged = False
        for i in range(len(regions)):
            for j in range(i + 1, len(regions)):
                a, b = regions[i], regions[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    regions[i] = _square(min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]),
                                         0.0, min_side, size)  # fmt: skip
                    del regions[j]
                    merged = True
                    break
            if merged:
                break
    if len(regions) > max_regions:
        return None
    if sum((r[2] - r[0]) * (r[3] - r[1]) for r in regions) > max_cover * w * h:
        return None
    return regions


def _square(
    x1: float, y1: float, x2: float, y2: float, pad: float, min_side: int, size: tuple[int, int]
) -> Region:
    """The padded box grown to a square of at least `min_side`, kept inside the image (a square wider than
    the image's short side is cut to it: such a region ends up covering most of the frame anyway)."""
    w, h = size
    side = max((x2 - x1) * (1 + 2 * pad), (y2 - y1) * (1 + 2 * pad), min_side)
    side = min(side, w, h)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left = round(min(max(cx - side / 2, 0), w - side))
    top = round(min(max(cy - side / 2, 0), h - side))
    s = round(side)
    return left, top, min(w, left + s), min(h, top + s)
