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
    """HWC BGR uint8 -> CHW float32: (pixel * scale - mean) / std, channels in the model's order."""
    if rgb:
        image = image[:, :, ::-1]
    x = image.astype(np.float32) * np.float32(scale)
    if any(mean) or any(s != 1 for s in std):
        x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


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
            out = out.T
        elif out.shape[1] != width:
            raise ValueError(f"yolov8 output must be [{width}, N], got {tuple(out.shape)}")
        class_scores = out[:, 4:]
    elif layout == "yolov5":
        width = 5 + num_classes
        if out.shape[1] != width:
            raise ValueError(f"yolov5 output must be [N, {width}], got {tuple(out.shape)}")
        class_scores = out[:, 5:] * out[:, 4:5]
    else:
        raise ValueError(f"unknown layout {layout!r}")
    class_ids = class_scores.argmax(axis=1) if num_classes else np.zeros(len(out), np.int64)
    scores = class_scores[np.arange(len(out)), class_ids]
    keep = scores >= min_confidence
    cxcywh = out[keep, :4]
    boxes = np.empty_like(cxcywh)
    boxes[:, 0:2] = cxcywh[:, 0:2] - cxcywh[:, 2:4] / 2
    boxes[:, 2:4] = cxcywh[:, 0:2] + cxcywh[:, 2:4] / 2
    return Decoded(boxes, scores[keep].astype(np.float32), class_ids[keep].astype(np.int64))


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box against [N, 4] boxes."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(found: Decoded, iou_threshold: float, max_detections: int = 300) -> Decoded:
    """Greedy class-aware NMS: a box is suppressed only by a higher-scoring box of its own class
    whose IoU with it is above the threshold. Ties keep the earlier candidate (stable sort)."""
    if not len(found):
        return found
    order = np.argsort(-found.scores, kind="stable")
    keep: list[int] = []
    suppressed = np.zeros(len(found), dtype=bool)
    for rank, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(int(i))
        if len(keep) >= max_detections:
            break
        rest = order[rank + 1 :]
        rest = rest[~suppressed[rest] & (found.class_ids[rest] == found.class_ids[i])]
        if rest.size:
            suppressed[rest[iou(found.boxes[i], found.boxes[rest]) > iou_threshold]] = True
    return found.take(np.asarray(keep, dtype=np.int64))


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
