"""`bench/inference.py --regions`: the detector analyzer's full-frame vs region mode on real footage.

One camera's analysed frames (vtest.avi at 5 FPS, resized to the pipeline's working width) go through
`Detector.process` on a real pool, mode by mode, on two sequences:
- `busy`: the street as it is (people walk through every frame of it);
- `half_calm` / `quarter_active`: the same seconds, then once / three times as many of the last picture
  held still (a camera that is calm half / three quarters of the time; most cameras are calm far more).
Reported per mode: CPU ms per analysed frame (the whole process: pre/post-processing, motion, inference
threads), the detector runs it made (full frames, regions), and recall of the persons that yolov3-tiny finds
at >= 0.5 on the full-resolution frames (IoU >= 0.5 with a box the mode reported on that frame, tracked or
carried).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from app.analyzers.detector import Detector, DetectorOptions
from app.analyzers.yolo import decode, iou_matrix, letterbox, nms, to_source, to_tensor
from app.inference.install import install_known
from app.inference.pool import ResourcePool
from app.stream.frame import Frame

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
RESULTS = Path(__file__).resolve().parent / "results" / "detector-regions.json"
FPS = 5
MODES: dict[str, dict[str, Any]] = {
    "full_416": {"model": "yolov3-tiny"},
    "full_256": {"model": "yolov3-tiny-256"},
    "regions_416": {"model": "yolov3-tiny", "mode": "regions"},
    "regions_256": {"model": "yolov3-tiny", "mode": "regions", "region_model": "yolov3-tiny-256"},
    "regions_160": {"model": "yolov3-tiny", "mode": "regions", "region_model": "yolov3-tiny-160"},
}


def read_frames(seconds: float) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(VTEST))
    frames = []
    i = 0
    while len(frames) < seconds * FPS:
        ok, image = cap.read()
        if not ok:
            break
        if i % (10 // FPS) == 0:
            frames.append(image)
        i += 1
    cap.release()
    return frames


async def reference(pool: ResourcePool, frames: list[np.ndarray]) -> list[np.ndarray]:
    """Persons at >= 0.5 on the full-resolution frames (768x576 -> 416): the boxes a mode should find."""
    out = []
    for image in frames:
        boxed, lb = letterbox(image, 416, 416)
        (raw,) = await pool.infer("yolov3-tiny", to_tensor(boxed))
        found = nms(decode(raw, "yolov5", 80, 0.5), 0.45)
        found = found.take(np.flatnonzero(found.class_ids == 0))
        h, w = image.shape[:2]
        out.append(to_source(found.boxes, lb, (w, h), (w, h)))
    return out


async def run_mode(
    pool: ResourcePool, options: dict[str, Any], frames: list[np.ndarray], width: int, refs: list[np.ndarray]
) -> dict[str, Any]:
    det = Detector(DetectorOptions.parse({**options, "classes": ["person"]}), pool)
    h, w = frames[0].shape[:2]
    size = (width, round(h * width / w))
    small = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
    found = missed = 0
    cpu, wall = time.process_time(), time.perf_counter()
    for i, image in enumerate(small):
        obs = await det.process(Frame(1, i, 1000.0 + i / FPS, image, w, h), {})
        boxes = np.array([[d.x1, d.y1, d.x2, d.y2] for d in obs.detections], np.float32).reshape(-1, 4)
        ref = refs[i]
        if len(ref):
            hit = (iou_matrix(ref, boxes) >= 0.5).any(axis=1) if len(boxes) else np.zeros(len(ref), bool)
            found, missed = found + int(hit.sum()), missed + int((~hit).sum())
    cpu_ms = (time.process_time() - cpu) / len(small) * 1000
    return {
        "cpu_ms_per_frame": round(cpu_ms, 1),
        "wall_ms_per_frame": round((time.perf_counter() - wall) / len(small) * 1000, 1),
        "recall": round(found / max(1, found + missed), 3),
        "passes": dict(det.passes),
        "frames": len(small),
    }


async def measure(models_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    busy = read_frames(args.footage_s)
    sequences = {
        "busy": busy,
        "half_calm": busy + [busy[-1]] * len(busy),
        "quarter_active": busy + [busy[-1]] * (3 * len(busy)),
    }
    out: dict[str, Any] = {}
    async with ResourcePool(models_dir, builtin_vad=False, max_wait_ms=2.0) as pool:
        refs_busy = await reference(pool, busy)
        refs = {name: refs_busy + [refs_busy[-1]] * (len(seq) - len(busy)) for name, seq in sequences.items()}
        for name in MODES:  # warm-up: load every model once outside the timings
            await run_mode(pool, MODES[name], busy[:3], args.width, refs_busy[:3])
        for seq, frames in sequences.items():
            out[seq] = {}
            for name, options in MODES.items():
                out[seq][name] = await run_mode(pool, options, frames, args.width, refs[seq])
                print(f"  {seq:9s} {name:12s} {out[seq][name]}", flush=True)
    return out


def run_regions(args: argparse.Namespace) -> None:
    if not VTEST.is_file():
        raise SystemExit("needs Debian's opencv-doc (vtest.avi)")
    with tempfile.TemporaryDirectory(prefix="argus-bench-") as tmp:
        models_dir = Path(tmp)
        install_known(models_dir, "yolov3-tiny")
        for side in (256, 160):
            install_known(models_dir, "yolov3-tiny", input_size=(side, side), as_name=f"yolov3-tiny-{side}")
        started, load_before = time.time(), os.getloadavg()
        result: dict[str, Any] = {"sequences": asyncio.run(measure(models_dir, args))}
    result["settings"] = {"fps": FPS, "width": args.width, "footage_s": args.footage_s, "classes": ["person"]}
    result["machine"] = {
        "cpu_count": os.cpu_count(),
        "loadavg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }
    result["took_s"] = round(time.time() - started, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for seq, modes in result["sequences"].items():
        base = modes["full_416"]
        parts = []
        for m, r in modes.items():
            ratio = base["cpu_ms_per_frame"] / max(r["cpu_ms_per_frame"], 1e-9)
            parts.append(f"{m} {r['cpu_ms_per_frame']} ms (x{ratio:.1f}) recall {r['recall']}")
        print(f"detector regions, {seq}: " + " | ".join(parts))
