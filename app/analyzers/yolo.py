"""YOLO-family pre- and post-processing in plain numpy/cv2: letterbox, output decoding, class-aware NMS.

Pure functions over arrays so they can be checked exactly against graphs with known outputs; the
detector analyzer strings them around one `pool.infer` call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

Layout = Literal["yolov8", "yolov5"]
PAD_VALUE = 114  # what Ultralytics pads with; models are trained to ignore this grey


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How an image was fitted into the model input: model = image * scale + pad."""

    scale: float
    pad_x: float
    pad_y: float

    def to_image(self, boxes: np.ndarray) -> np.ndarray:
        """Map [N, 4] xyxy boxes from model-input pixels back to the letterboxed image's pixels."""
        out = boxes.astype(np.float32, copy=True)
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale
        return out


@dataclass(frozen=True, slots=True)
class Decoded:
    """Candidate detections in model-input pixels (xyxy), before or after NMS."""

    boxes: np.ndarray  # [N, 4] float32
    scores: np.ndarray  # [N] float32
    class_ids: np.ndarray  # [N] int64

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def take(self, index: np.ndarray) -> Decoded:
        return Decoded(self.boxes[index], self.scores[index], self.class_ids[index])


def letterbox(
    image: np.ndarray, width: int, height: int, pad_value: int = PAD_VALUE
) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio and pad the rest evenly (Ultralytics' centred letterbox)."""
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    new_w, new_h = round(w * scale), round(h * scale)
    if (new_w, new_h) != (w, h):
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    pad_x, pad_y = (width - new_w) / 2, (height - new_h) / 2
    top, left = round(pad_y - 0.1), round(pad_x - 0.1)
    bottom, right = height - new_h - top, width - new_w - left
    if top or bottom or left or right:
        image = cv2.copyMakeBorder(
            image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(pad_value,) * 3
        )
    return image, Letterbox(scale=scale, pad_x=float(left), pad_y=float(top))


def to_tensor(
    image: np.ndarray,
    *,
    rgb: bool = True,
    scale: float = 1 / 255,
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0),
    std: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> np.ndarray:
    """HWC BGR uint8 -> CHW float32: (pixel * scale - mean) / std, channels in the model's order.

    One strided pass per channel straight into the contiguous output: about 4x cheaper than
    flip + astype + transpose + copy at 640x640 (0.7 ms against 3.4 ms here).
    """
    h, w, channels = image.shape
    out = np.empty((channels, h, w), np.float32)
    for c in range(channels):
        src = channels - 1 - c if rgb else c
        np.multiply(image[:, :, src], np.float32(scale / std[c]), out=out[c])
        if mean[c]:
            out[c] -= np.float32(mean[c] / std[c])
    return out


def decode(output: np.ndarray, layout: Layout, num_classes: int, min_confidence: float) -> Decoded:
    """One item's raw output (no batch dim) -> boxes above min_confidence.

    yolov8: [4+C, N] rows cx, cy, w, h, class scores (also accepted transposed, [N, 4+C]).
    yolov5: [N, 5+C] rows cx, cy, w, h, objectness, class scores; confidence = objectness * class score.
    """
    out = np.asarray(output, dtype=np.float32)
    if out.ndim == 3 and out.shape[0] == 1:
        out = out[0]
    if out.ndim != 2:
        raise ValueError(f"expected a 2-D output per item, got shape {tuple(output.shape)}")
    if layout == "yolov8":
        width = 4 + num_classes
        if out.shape[0] == width:
            rows = out  # [4+C, N]: work along N, contiguous
        elif out.shape[1] == width:
            rows = out.T
        else:
            raise ValueError(f"yolov8 output must be [{width}, N], got {tuple(out.shape)}")
        class_scores = rows[4:]
        scores = class_scores.max(axis=0) if num_classes else np.zeros(rows.shape[1], np.float32)
        keep = np.flatnonzero(scores >= min_confidence)
        class_ids = class_scores[:, keep].argmax(axis=0) if num_classes else np.zeros(len(keep), np.int64)
        cxcywh = rows[:4, keep].T
        scores = scores[keep]
    elif layout == "yolov5":
        width = 5 + num_classes
        if out.shape[1] != width:
            raise ValueError(f"yolov5 output must be [N, {width}], got {tuple(out.shape)}")
        # A class score is at most 1, so objectness below the threshold rules a row out cheaply.
        rows = out[out[:, 4] >= min_confidence]
        class_scores = rows[:, 5:] * rows[:, 4:5]
        class_ids = class_scores.argmax(axis=1) if num_classes else np.zeros(len(rows), np.int64)
        scores = class_scores[np.arange(len(rows)), class_ids] if num_classes else rows[:, 4]
        keep = np.flatnonzero(scores >= min_confidence)
        cxcywh, scores, class_ids = rows[keep, :4], scores[keep], class_ids[keep]
    else:
        raise ValueError(f"unknown layout {layout!r}")
    boxes = np.empty((len(keep), 4), np.float32)
    boxes[:, 0:2] = cxcywh[:, 0:2] - cxcywh[:, 2:4] / 2
    boxes[:, 2:4] = cxcywh[:, 0:2] + cxcywh[:, 2:4] / 2
    return Decoded(boxes, scores.astype(np.float32), class_ids.astype(np.int64))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N, 4] x [M, 4] xyxy -> [N, M] IoU (0 where a union is empty)."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)), dtype=np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def nms(found: Decoded, iou_threshold: float, max_detections: int = 300) -> Decoded:
    """Greedy class-aware NMS: a box is suppressed only by a higher-scoring box of its own class whose
    IoU with it is above the threshold; ties keep the earlier candidate. OpenCV's C++ loop (float32
    IoU): ~15x faster than a numpy IoU matrix at 1000 candidates; tests check it against a reference."""
    if not len(found):
        return found
    rects = np.empty((len(found), 4), np.float64)  # float64 -> OpenCV's Rect2d overload, no rounding
    rects[:, :2] = found.boxes[:, :2]
    rects[:, 2:] = found.boxes[:, 2:] - found.boxes[:, :2]
    scores, classes = found.scores.astype(np.float32), found.class_ids.astype(np.int32)
    # ignore: cv2's stub types these vector<> arguments as Sequences; the binding takes (and wants) ndarrays
    ids = cv2.dnn.NMSBoxesBatched(rects, scores, classes, 0.0, float(iou_threshold))  # type: ignore[arg-type]
    kept = np.asarray(ids, np.int64).ravel()
    kept = kept[np.argsort(-found.scores[kept], kind="stable")][:max_detections]
    return found.take(kept)


def to_source(
    boxes: np.ndarray, box: Letterbox, image_size: tuple[int, int], source_size: tuple[int, int]
) -> np.ndarray:
    """Model-input xyxy -> the stream's own pixels: undo the letterbox, then the working-size resize.

    image_size and source_size are (width, height); results are clipped to the stream's frame.
    """
    out = box.to_image(boxes)
    sx, sy = source_size[0] / image_size[0], source_size[1] / image_size[1]
    out[:, [0, 2]] = np.clip(out[:, [0, 2]] * sx, 0, source_size[0])
    out[:, [1, 3]] = np.clip(out[:, [1, 3]] * sy, 0, source_size[1])
    return out
