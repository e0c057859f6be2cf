"""NormalityModel: what is normal for one camera (where, when, how much, how fast, which way), learned online.

The picture is cut into a grid of cells (8 x 14 over a 112 x 64 grey plane). Each analysed frame gives,
per cell, from the difference with the previous frame: whether the cell is active, its motion energy,
its speed (normal-flow magnitude) and the direction of a Lucas-Kanade vector solved over the whole cell
(one 2 x 2 system per cell: 0.1 ms a frame here, 8x cheaper than dense Farneback flow at the same size,
and its direction agrees with Farneback's on 93 % of moving cells of vtest.avi). The model counts,
weighted by the seconds each frame stands for (so keyframes of a calm gated camera and full-rate
frames of a busy one count alike):

- where / when: active seconds per cell per time bucket (hour of day x weekday/weekend), read through
  a hierarchy (bucket -> hour of day -> all time) so a bucket with little history falls back on the
  broader rate;
- how much / how fast: mean and variance of log energy and log speed per cell, over active frames;
- which way: an 8-bin histogram of motion directions per cell;
- what (when a detector runs): seconds each object class was seen per cell and bucket.

A frame's surprise per cell is -log10 of how rare its activity is under these counts (3 = one in a
thousand), the largest component naming the reason; surprises are smoothed over a few frames, and the
unusual cells are grouped into regions whose score grows with their extent (a rare car across six cells
scores ~20, a whole picture changing hundreds), so one threshold (3) fits every camera and the
severity bands keep their meaning.

All of it is numpy: 0.5-0.7 ms of CPU a frame per camera at 320 px (grey plane 0.18, features 0.18,
judge 0.13, learn 0.03 ms; bench/vad_eval.py), 57 KB of counts per camera (7 KB on disk). Not ONNX in
the pool: only the features would fit a graph (judging reads per-camera tables by time bucket, learning
is a stateful scatter-add, regions need connected components), and moving those 0.18 ms there would
add a second pool trip per frame (0.14 ms alone, plus up to batch_max_wait_ms of batching wait).
"""

from __future__ import annotations

import io
import json
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

log = logging.getLogger("argus.analyzers")

FORMAT = "argus-normality"
VERSION = 1
PLANE_W, PLANE_H = 112, 64
CELL = 8
GRID_H, GRID_W = PLANE_H // CELL, PLANE_W // CELL
CELLS = GRID_H * GRID_W
N_DIRS = 8
BUCKETS = 48  # hour of day x (weekday, weekend)
NOISE_FLOOR = 0.04  # grey-level difference (0..1) under which a pixel is noise, as in the built-in model
ACTIVE_FRACTION = 0.06  # a cell is active when this share of its pixels changed
MAX_DT = 5.0  # a gap longer than this (reconnect, pause) is not "seconds observed"
FLOW_MAX_DT = 1.0  # motion vectors only between frames this close
MIN_SPEED = 0.5  # plane pixels per second: slower vectors carry no usable direction
PRIOR_S = 60.0  # pseudo-seconds pulling a thin bucket towards the broader rate
OBJECT_PRIOR_S = 5.0  # objects: a bucket's own history counts sooner (classes are sparse, hours distinct)
STAT_PRIOR = 20.0  # pseudo-observations pulling a cell's magnitude/speed stats to the picture's
DIR_MIN = 30.0  # directions seen in a cell before "which way" can be unusual
SMOOTH = 0.5  # per-frame EMA of the cell surprise: a one-frame blip counts half
MAX_SURPRISE = 6.0
REGION_FLOOR = 1.5  # cells at least this surprising join a region
EXCESS_FLOOR = 2.0  # a region's score adds up its cells' surprise beyond this (1 % of the time)
MUTE_CALM = 25  # frames (5 s at 5 FPS) a muted cell must stay calm before it may alert again
SLOW_WEIGHT = 0.05  # learning weight of cells inside an open anomaly: a long one is absorbed slowly
COUNT_CAP_S = (
    30 * 86_400.0
)  # per bucket: older seconds fade (halved) beyond this, so the model follows change
STAT_CAP = 50_000.0
COMPONENTS = ("where", "when", "how_much", "how_fast", "direction", "what")
DIRECTION_NAMES = ("right", "down-right", "down", "down-left", "left", "up-left", "up", "up-right")


def grey_plane(image: np.ndarray) -> np.ndarray:
    """BGR frame -> (64, 112) float32 grey in [0, 1]."""
    small = cv2.resize(image, (PLANE_W, PLANE_H), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
    return grey.astype(np.float32) * np.float32(1 / 255)


def _cells(x: np.ndarray) -> np.ndarray:
    return x.reshape(GRID_H, CELL, GRID_W, CELL).sum(axis=(1, 3)).reshape(CELLS)


def bucket_of(t: float) -> int:
    """Hour of day (server local time), + 24 on Saturday and Sunday."""
    lt = time.localtime(t)
    return lt.tm_hour + (24 if lt.tm_wday >= 5 else 0)


@dataclass(slots=True)
class Features:
    """One frame against the previous one, per cell."""

    dt: float
    active: np.ndarray  # bool [CELLS]
    energy: np.ndarray  # float [CELLS], mean blurred difference x 100 (the built-in model's units)
    speed: np.ndarray  # float [CELLS], plane pixels per second (NaN: no usable vector)
    direction: np.ndarray  # int [CELLS], 0..7 (-1: no usable vector)


def extract(prev: np.ndarray, cur: np.ndarray, dt: float) -> Features:
    diff = cv2.blur(np.abs(cur - prev), (3, 3))
    changed = _cells((diff > NOISE_FLOOR).astype(np.float32)) / (CELL * CELL)
    active = changed >= ACTIVE_FRACTION
    energy = _cells(np.maximum(diff - NOISE_FLOOR, 0)) * (100.0 / (CELL * CELL))
    speed = np.full(CELLS, np.nan, np.float32)
    direction = np.full(CELLS, -1, np.int8)
    if dt <= FLOW_MAX_DT and active.any():
        mean = (prev + cur) * 0.5
        iy, ix = np.gradient(mean)
        it = cur - prev
        sxx, syy, sxy = _cells(ix * ix), _cells(iy * iy), _cells(ix * iy)
        sxt, syt = _cells(ix * it), _cells(iy * it)
        det = sxx * syy - sxy * sxy
        # speed: the normal-flow magnitude sqrt(sum It^2 / sum |grad I|^2), which keeps growing with the
        # displacement where the LK vector saturates (vtest 3x faster: 1.6x higher, LK: unchanged)
        v = np.sqrt(_cells(it * it) / (sxx + syy + 1e-6)) / max(dt, 1e-3)
        ok = active & (det > 1e-6) & (v >= MIN_SPEED)
        speed[ok] = v[ok]
        safe = np.where(ok, det, 1.0)
        vx = (-syy * sxt + sxy * syt) / safe
        vy = (sxy * sxt - sxx * syt) / safe
        angle = np.arctan2(vy, vx)
        bins = np.round(angle / (2 * np.pi / N_DIRS)).astype(np.int64) % N_DIRS
        direction[ok] = bins[ok]
    return Features(dt, active, energy, speed, direction)


@dataclass(slots=True)
class Region:
    box: tuple[float, float, float, float]  # normalised x1, y1, x2, y2
    score: float
    component: str
    reason: str
    normal: float | None
    cells: int

    def to_json(self) -> dict[str, Any]:
        return {
            "box": [round(v, 4) for v in self.box],
            "score": round(self.score, 3),
            "reason": self.reason,
            "component": self.component,
            "normal": None if self.normal is None else round(self.normal, 6),
            "cells": self.cells,
        }


@dataclass(slots=True)
class Judgement:
    score: float  # the most unusual region's score (0 when nothing stands out)
    regions: list[Region]
    surprise: np.ndarray  # smoothed, per cell
    component: np.ndarray  # index into COMPONENTS, per cell


def _tail(z: np.ndarray) -> np.ndarray:
    """-log10 of the upper normal tail beyond z (0 for z <= 0), capped."""
    z = np.clip(z, 0.0, 8.0)
    p = 0.5 * np.asarray([math.erfc(v / math.sqrt(2.0)) for v in z.ravel()]).reshape(z.shape)
    return np.clip(-np.log10(np.maximum(p, 1e-12)), 0.0, MAX_SURPRISE) * (z > 0)


def _log_surprise(p: np.ndarray) -> np.ndarray:
    return np.clip(-np.log10(np.maximum(p, 1e-12)), 0.0, MAX_SURPRISE)


@dataclass
class NormalityModel:
    """The per-camera counts; `judge` scores a frame against them, `learn` adds it."""

    seen: np.ndarray = field(default_factory=lambda: np.zeros(BUCKETS))  # seconds observed per bucket
    active: np.ndarray = field(default_factory=lambda: np.zeros((BUCKETS, CELLS)))  # active seconds
    energy: np.ndarray = field(default_factory=lambda: np.zeros((3, CELLS)))  # n, sum, sum sq of log
    speed: np.ndarray = field(default_factory=lambda: np.zeros((3, CELLS)))
    directions: np.ndarray = field(default_factory=lambda: np.zeros((CELLS, N_DIRS)))
    pace: np.ndarray = field(default_factory=lambda: np.zeros(3))  # the frame's median log speed: n, sum, sq
    objects: dict[str, np.ndarray] = field(default_factory=dict)  # class -> seconds seen [BUCKETS, CELLS]
    object_seen: np.ndarray = field(default_factory=lambda: np.zeros(BUCKETS))  # seconds the detector ran
    learned_s: float = 0.0
    _smooth: np.ndarray = field(default_factory=lambda: np.zeros(CELLS))
    _muted: np.ndarray = field(default_factory=lambda: np.zeros(CELLS))  # calm frames left before unmuting

    # -- rates --

    def activity_rate(self, bucket: int) -> np.ndarray:
        """Share of observed time each cell is active in this bucket, shrunk towards broader rates."""
        total_seen = self.seen.sum()
        overall = (self.active.sum(axis=0) + 0.5) / (total_seen + 1.0)
        hour = bucket % 24
        hour_seen = self.seen[hour] + self.seen[hour + 24]
        hour_active = self.active[hour] + self.active[hour + 24]
        by_hour = (hour_active + PRIOR_S * overall) / (hour_seen + PRIOR_S)
        rate: np.ndarray = (self.active[bucket] + PRIOR_S * by_hour) / (self.seen[bucket] + PRIOR_S)
        return rate

    def overall_rate(self) -> np.ndarray:
        rate: np.ndarray = (self.active.sum(axis=0) + 0.5) / (self.seen.sum() + 1.0)
        return rate

    def _stats(self, acc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-cell mean and std of a log quantity, shrunk towards the whole picture's."""
        n, s, ss = acc
        total = n.sum()
        if total < 1:
            return np.zeros(CELLS), np.full(CELLS, np.inf)
        g_mean = s.sum() / total
        g_var = max(ss.sum() / total - g_mean * g_mean, 0.0)
        mean = (s + STAT_PRIOR * g_mean) / (n + STAT_PRIOR)
        var = (ss + STAT_PRIOR * (g_var + g_mean * g_mean)) / (n + STAT_PRIOR) - mean * mean
        return mean, np.sqrt(np.maximum(var, 0.0)) + 0.2

    # -- scoring --

    def judge(self, f: Features, t: float, objects: Sequence[tuple[str, int]] = ()) -> Judgement:
        bucket = bucket_of(t)
        surprise = np.zeros((len(COMPONENTS), CELLS))
        act = f.active
        muted = self._muted > 0
        if self.seen.sum() > 0 and act.any():
            rate = self.activity_rate(bucket)
            overall = self.overall_rate()
            s_rate = _log_surprise(rate) * act
            s_overall = _log_surprise(overall) * act
            # the rarity at this hour; "when" when the place alone does not explain it
            by_time = (s_rate > s_overall + 0.5) & (s_overall < 2.5)  # the place itself is not rare
            surprise[0] = np.where(by_time, 0.0, s_rate)
            surprise[1] = np.where(by_time, s_rate, 0.0)
            mean, std = self._stats(self.energy)
            surprise[2] = _tail((np.log(np.maximum(f.energy, 1e-3)) - mean) / std) * act
            mean, std = self._stats(self.speed)
            has_v = ~np.isnan(f.speed)
            z = np.where(has_v, (np.log(np.where(has_v, f.speed, 1.0)) - mean) / std, 0.0)
            surprise[3] = _tail(z) * has_v
            # everyone a little faster is surer than one cell much faster: the frame's median pace
            pace = self._pace_surprise(f, has_v & ~muted)
            surprise[3] = np.where(has_v & (z > 0), np.maximum(surprise[3], pace), surprise[3])
            surprise[4] = self._direction_surprise(f)
        for label, cell in objects:
            surprise[5, cell] = max(surprise[5, cell], self._object_surprise(label, cell, bucket))
        cell_surprise = surprise.max(axis=0)
        component = surprise.argmax(axis=0)
        self._smooth = SMOOTH * self._smooth + (1 - SMOOTH) * cell_surprise
        # an accepted change stays muted until it has been calm for MUTE_CALM frames in a row
        self._muted = np.where(
            muted & (self._smooth >= REGION_FLOOR), MUTE_CALM, np.maximum(self._muted - 1, 0)
        )
        smooth = np.where(muted, 0.0, self._smooth)
        regions = self._regions(smooth, component, surprise, f, bucket, objects)
        score = max((r.score for r in regions), default=0.0)
        return Judgement(score, regions, smooth, component)

    def _pace_surprise(self, f: Features, has_v: np.ndarray) -> float:
        n, s, ss = self.pace
        if n < STAT_PRIOR or has_v.sum() < 2:
            return 0.0
        mean = s / n
        std = math.sqrt(max(ss / n - mean * mean, 0.0)) + 0.05
        z = (float(np.median(np.log(f.speed[has_v]))) - mean) / std
        return float(_tail(np.asarray([z]))[0])

    def _direction_surprise(self, f: Features) -> np.ndarray:
        has = f.direction >= 0
        if not has.any():
            return np.zeros(CELLS)
        counts = self.directions
        total = counts.sum(axis=1)
        idx = np.where(has, f.direction, 0).astype(np.int64)
        p = (counts[np.arange(CELLS), idx] + 0.1) / (total + 0.1 * N_DIRS)
        out: np.ndarray = _log_surprise(p) * has * (total >= DIR_MIN)
        return out

    def _object_surprise(self, label: str, cell: int, bucket: int) -> float:
        seen = self.object_seen
        if seen.sum() <= 0:
            return 0.0
        counts = self.objects.get(label)
        hits = counts[:, cell] if counts is not None else np.zeros(BUCKETS)
        overall = (hits.sum() + 0.5) / (seen.sum() + 1.0)
        p = (hits[bucket] + OBJECT_PRIOR_S * overall) / (seen[bucket] + OBJECT_PRIOR_S)
        return float(_log_surprise(np.asarray([p]))[0])

    def _regions(
        self,
        smooth: np.ndarray,
        component: np.ndarray,
        surprise: np.ndarray,
        f: Features,
        bucket: int,
        objects: Sequence[tuple[str, int]],
    ) -> list[Region]:
        mask = (smooth >= REGION_FLOOR).reshape(GRID_H, GRID_W).astype(np.uint8)
        if not mask.any():
            return []
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        flat = labels.reshape(CELLS)
        regions = []
        for k in range(1, n):
            cells = np.flatnonzero(flat == k)
            top = int(cells[np.argmax(smooth[cells])])
            peak = float(smooth[top])
            # the rarest cell, plus the excess rarity of the region beyond "1 % of the time": an area that
            # is merely uncommon stays under the threshold however large, a rare object grows with its extent
            score = peak + float(np.maximum(smooth[cells] - EXCESS_FLOOR, 0).sum())
            x, y, w, h = (int(v) for v in stats[k, :4])
            box = (x / GRID_W, y / GRID_H, (x + w) / GRID_W, (y + h) / GRID_H)
            name = COMPONENTS[int(component[top])] if surprise[:, top].max() > 0 else "where"
            reason, normal = self._explain(name, top, f, bucket, objects)
            regions.append(Region(box, score, name, reason, normal, len(cells)))
        regions.sort(key=lambda r: -r.score)
        return regions

    def _explain(
        self, name: str, cell: int, f: Features, bucket: int, objects: Sequence[tuple[str, int]]
    ) -> tuple[str, float | None]:
        if name == "where":
            rate = float(self.overall_rate()[cell])
            return f"where: motion here is normally active {_pct(rate)} of the time", rate
        if name == "when":
            rate, overall = float(self.activity_rate(bucket)[cell]), float(self.overall_rate()[cell])
            hour = bucket % 24
            return (f"when: motion here is normally active {_pct(rate)} of the time at {hour:02d}:00 "
                    f"({_pct(overall)} overall)", rate)  # fmt: skip
        if name == "how_much":
            mean, _ = self._stats(self.energy)
            usual = math.exp(float(mean[cell]))
            ratio = float(f.energy[cell]) / usual
            return f"how much: motion here is {ratio:.1f}x stronger than usual ({usual:.2f})", usual
        if name == "how_fast":
            mean, _ = self._stats(self.speed)
            usual = math.exp(float(mean[cell]))
            ratio = float(f.speed[cell]) / usual
            return f"how fast: moving {ratio:.1f}x faster than usual here", usual
        if name == "direction":
            d = int(f.direction[cell])
            counts = self.directions[cell]
            share = float(counts[d] / max(counts.sum(), 1.0))
            usual_way = DIRECTION_NAMES[int(np.argmax(counts))]
            return (f"direction: moving {DIRECTION_NAMES[d]}; {_pct(share)} of motion here goes this way "
                    f"(usually {usual_way})", share)  # fmt: skip
        label = next((lb for lb, c in objects if c == cell), "object")
        counts = self.objects.get(label)
        hits = float(counts[bucket, cell]) if counts is not None else 0.0
        share = hits / max(float(self.object_seen[bucket]), 1.0)
        return f"what: a {label} here is seen {_pct(share)} of the time at {bucket % 24:02d}:00", share

    def mute(self, cells: np.ndarray) -> None:
        """Accept the current change as the new normal: these cells stop alerting until they calm down."""
        self._muted = np.where(cells, MUTE_CALM, self._muted)

    # -- learning --

    def learn(self, f: Features, t: float, weights: np.ndarray | None = None,
              objects: Sequence[tuple[str, int]] = ()) -> None:  # fmt: skip
        """Add one frame. `weights` (per cell, 0..1) slows learning where an anomaly is open."""
        dt = min(f.dt, MAX_DT)
        if dt <= 0:
            return
        w = np.ones(CELLS) if weights is None else weights
        b = bucket_of(t)
        self.seen[b] += dt
        self.active[b] += dt * w * f.active
        self.learned_s += dt
        act = f.active
        _accumulate(self.energy, np.log(np.maximum(f.energy, 1e-3)), act * w)
        has_v = ~np.isnan(f.speed)
        _accumulate(self.speed, np.log(np.where(has_v, f.speed, 1.0)), has_v * w)
        if has_v.sum() >= 2:
            pace = float(np.median(np.log(f.speed[has_v])))
            _accumulate(self.pace, np.asarray(pace), np.asarray(float(w[has_v].min())))
        has_d = f.direction >= 0
        cells = np.flatnonzero(has_d)
        self.directions[cells, f.direction[cells].astype(np.int64)] += w[cells]
        if self.seen[b] > COUNT_CAP_S:
            self.seen[b] *= 0.5
            self.active[b] *= 0.5
        for acc in (self.energy, self.speed, self.pace):
            if acc[0].max(initial=0) > STAT_CAP:
                acc *= 0.5
        if self.directions.sum(axis=1).max(initial=0) > STAT_CAP:
            self.directions *= 0.5

    def learn_objects(self, t: float, dt: float, objects: Iterable[tuple[str, int]]) -> None:
        """The detector ran on this frame: count each class in each cell it was seen in."""
        dt = min(dt, MAX_DT)
        b = bucket_of(t)
        self.object_seen[b] += dt
        for label, cell in set(objects):
            counts = self.objects.setdefault(label, np.zeros((BUCKETS, CELLS)))
            counts[b, cell] += dt

    # -- persistence --

    def dumps(self) -> bytes:
        objects = sorted(self.objects)
        meta = {"format": FORMAT, "version": VERSION, "grid": [GRID_H, GRID_W], "buckets": BUCKETS,
                "learned_s": self.learned_s, "objects": objects}  # fmt: skip
        arrays = {"seen": self.seen, "active": self.active, "energy": self.energy, "speed": self.speed,
                  "directions": self.directions, "object_seen": self.object_seen,
                  "pace": self.pace}  # fmt: skip
        arrays |= {f"object_{i}": self.objects[k] for i, k in enumerate(objects)}
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
            **arrays,  # type: ignore[arg-type]  # numpy's stub: **arrays might fill `allow_pickle: bool`
        )
        return buf.getvalue()

    @classmethod
    def loads(cls, data: bytes) -> NormalityModel:
        """ValueError when the bytes are not a model of this version and grid."""
        try:
            with np.load(io.BytesIO(data)) as z:
                meta = json.loads(z["meta"].tobytes())
                if meta.get("format") != FORMAT or meta.get("version") != VERSION:
                    raise ValueError(
                        f"not a {FORMAT} v{VERSION} file: {meta.get('format')} {meta.get('version')}"
                    )
                if meta.get("grid") != [GRID_H, GRID_W] or meta.get("buckets") != BUCKETS:
                    raise ValueError("grid or buckets differ")
                model = cls(seen=z["seen"], active=z["active"], energy=z["energy"], speed=z["speed"],
                            directions=z["directions"], object_seen=z["object_seen"], pace=z["pace"],
                            learned_s=float(meta["learned_s"]))  # fmt: skip
                model.objects = {k: z[f"object_{i}"] for i, k in enumerate(meta["objects"])}
        except (OSError, KeyError, json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"unreadable normality model: {exc}") from exc
        if model.active.shape != (BUCKETS, CELLS) or model.directions.shape != (CELLS, N_DIRS):
            raise ValueError("array shapes differ")
        return model

    @property
    def nbytes(self) -> int:
        arrays = [self.seen, self.active, self.energy, self.speed, self.directions, self.object_seen,
                  self._smooth, self._muted, *self.objects.values()]  # fmt: skip
        return sum(a.nbytes for a in arrays)


def _accumulate(acc: np.ndarray, values: np.ndarray, weights: np.ndarray) -> None:
    acc[0] += weights
    acc[1] += weights * values
    acc[2] += weights * values * values


def _pct(p: float) -> str:
    pct = 100 * p
    return f"{pct:.2g} %" if pct < 10 else f"{pct:.0f} %"


def cells_of(box: Sequence[float], width: float, height: float) -> list[int]:
    """The grid cells a box (stream pixels) covers."""
    c1 = min(GRID_W - 1, max(0, int(box[0] / max(width, 1) * GRID_W)))
    c2 = min(GRID_W - 1, max(0, int(box[2] / max(width, 1) * GRID_W)))
    r1 = min(GRID_H - 1, max(0, int(box[1] / max(height, 1) * GRID_H)))
    r2 = min(GRID_H - 1, max(0, int(box[3] / max(height, 1) * GRID_H)))
    return [r * GRID_W + c for r in range(r1, r2 + 1) for c in range(c1, c2 + 1)]


class ModelStore:
    """One file per camera under DATA_DIR/vad/, written atomically."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, camera_id: int) -> Path:
        return self.directory / f"camera-{camera_id}.npz"

    def load(self, camera_id: int) -> NormalityModel | None:
        path = self.path(camera_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError:
            log.exception("camera %s: normality model %s unreadable; learning again", camera_id, path)
            return None
        try:
            return NormalityModel.loads(data)
        except ValueError as exc:
            log.warning("camera %s: normality model %s ignored (%s); learning again", camera_id, path, exc)
            return None

    def save(self, camera_id: int, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(camera_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)

    def forget(self, camera_id: int) -> None:
        self.path(camera_id).unlink(missing_ok=True)


def render(model: NormalityModel, image: np.ndarray | None, t: float, width: int = 640) -> np.ndarray:
    """The learned activity map of the time bucket of `t` over `image` (BGR): where motion is normal.

    Cells are tinted by how often they are active at this hour (log scale, 0.01 % blue .. 30 % red);
    a cell never seen active stays untinted, so what would alert stands out as the clear picture.
    """
    height = round(width * 9 / 16) if image is None else round(image.shape[0] * width / image.shape[1])
    base = np.zeros((height, width, 3), np.uint8) if image is None else cv2.resize(image, (width, height))
    rate = model.activity_rate(bucket_of(t)).reshape(GRID_H, GRID_W)
    level = np.clip((np.log10(np.maximum(rate, 1e-6)) + 4) / (4 + math.log10(0.3)), 0, 1)
    colours = cv2.applyColorMap((level * 255).astype(np.uint8), cv2.COLORMAP_JET)
    overlay = cv2.resize(colours, (width, height), interpolation=cv2.INTER_NEAREST)
    alpha = cv2.resize((level * 0.6).astype(np.float32), (width, height), interpolation=cv2.INTER_NEAREST)
    out = base * (1 - alpha[..., None]) + overlay * alpha[..., None]
    out = out.astype(np.uint8)
    for r in range(1, GRID_H):
        cv2.line(out, (0, r * height // GRID_H), (width, r * height // GRID_H), (90, 90, 90), 1)
    for c in range(1, GRID_W):
        cv2.line(out, (c * width // GRID_W, 0), (c * width // GRID_W, height), (90, 90, 90), 1)
    bucket = bucket_of(t)
    label = (f"normal activity at {bucket % 24:02d}:00 {'weekend' if bucket >= 24 else 'weekday'}"
             f" - learned {model.learned_s / 3600:.1f} h")  # fmt: skip
    cv2.rectangle(out, (0, height - 22), (width, height), (0, 0, 0), -1)
    cv2.putText(out, label, (6, height - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return out
