"""The VAD analyzer: a per-frame anomaly score from the pool, normalised per camera, turned into episodes.

Over threshold opens ONE `anomaly` finding; it is updated sparingly (severity rise, or every
`update_every_s`) and closes once the score has stayed under threshold for `hold_s`. The statistics do
not learn during an episode, so a permanent change (lights left on, a moved camera, a new fan in view)
would keep it open for ever: after `max_duration_s` the episode closes with `reason: "max_duration"` and
the normaliser warms up again on the new scene, so one long change is one event and the next genuine
burst against the new scene opens a new one. The model is any
pool model of kind `vad` or `score` returning one number per frame; its manifest says how to feed it:
2 channels = the previous and current grey frame (the built-in motion model), 1 = the grey frame,
3 = the colour frame in the manifest's channel order.

Beside the score model, a per-camera NormalityModel (app/analyzers/normality.py) learns what is normal
for the camera (where, when, how much, how fast, which way) from every analysed frame. For the first
`learn_s` seconds of observed video the motion z-score rules, blended into the learned score as the
model fills (weight = seconds learned / learn_s), so a new camera still alerts in its first minute; then
the learned score alone decides, and every anomaly names its unusual regions in `data.regions`. The model
is saved under DATA_DIR/vad/ (every `SAVE_EVERY_S` and when the camera stops) and loaded at start.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from app.analyzers.base import Finding, Observation
from app.analyzers.normality import (
    MAX_DT,
    REGION_FLOOR,
    SLOW_WEIGHT,
    Features,
    Judgement,
    ModelStore,
    NormalityModel,
    cells_of,
    extract,
    grey_plane,
)
from app.analyzers.normalizer import ScoreNormalizer
from app.analyzers.registry import AnalyzerContext, AnalyzerType, ChainError
from app.inference.builtin_vad import NAME as BUILTIN_MODEL
from app.inference.manifest import ModelSpec
from app.kit.severity import Severity
from app.stream.frame import Frame

log = logging.getLogger("argus.analyzers")
SAVE_EVERY_S = 60.0


class VadOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    model: str = BUILTIN_MODEL
    threshold: float = Field(
        3.0, gt=0, le=100, description="motion z-score while learning, then learned rarity (3: 1 in 1000)"
    )
    warmup_frames: int = Field(25, ge=2, le=100_000, description="frames that only learn the scene")
    min_duration_s: float = Field(0.0, ge=0, le=60, description="over threshold this long before opening")
    hold_s: float = Field(2.0, ge=0, le=600, description="under threshold this long before closing")
    update_every_s: float = Field(10.0, gt=0, le=3600, description="refresh an open episode this often")
    max_duration_s: float = Field(
        300.0, gt=0, le=86_400, description="close a longer episode and re-learn the scene (a lasting change)"
    )
    alpha: float = Field(0.01, gt=0, lt=1, description="how fast the running statistics follow the scene")
    min_std: float = Field(0.1, gt=0, description="floor of the std, in raw score units")
    normality: bool = Field(True, description="learn what is normal for this camera (where/when/how)")
    learn_s: float = Field(
        3600.0, ge=1, le=30 * 86_400, description="seconds of video before the learned model alone decides"
    )
    objects: bool = Field(
        False,
        description="also learn object classes per cell and hour from the camera's detector (the VAD then "
        "waits for the detector each frame, and is skipped when the detector is)",
    )


def severity_for(z: float, threshold: float) -> Severity:
    """Bands in multiples of the threshold: [1, 4) low, [4, 10) medium, [10, 25) high, >= 25 critical.

    Wide on purpose: on a still scene (std at its floor) a person crossing gives z ~ 10-30 (low/medium),
    the whole picture changing (lights, tampering, smoke) gives z in the hundreds (critical).
    """
    ratio = z / threshold
    if ratio >= 25:
        return Severity.critical
    if ratio >= 10:
        return Severity.high
    if ratio >= 4:
        return Severity.medium
    return Severity.low


class Preprocessor:
    """BGR frame -> the model's item tensor (C, H, W), normalised as its manifest says."""

    def __init__(self, spec: ModelSpec) -> None:
        shape = spec.item_shape
        if len(shape) != 3 or shape[0] not in (1, 2, 3):
            raise ValueError(f"model {spec.name}: a score model takes [B, 1|2|3, H, W], not {list(shape)}")
        channels, h, w = shape
        if spec.input_size is not None:
            w, h = spec.input_size
        if h is None or w is None:
            raise ValueError(
                f"model {spec.name}: the graph's H, W are dynamic; give input_size in the manifest"
            )
        self.channels: int = channels  # type: ignore[assignment]
        self.size = (int(w), int(h))
        norm = spec.normalization
        self.order = norm.channel_order
        self.scale = np.float32(norm.scale)
        self.mean = np.asarray(norm.mean, np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(norm.std, np.float32).reshape(-1, 1, 1)

    def plane(self, image: np.ndarray) -> np.ndarray:
        """(C', H, W) float32 for one frame: C' = 3 for colour models, else 1 grey plane."""
        # Small (working-size -> ~100 px) resize and convert: tens of microseconds, cheaper inline than
        # a thread hop.
        small = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        if self.channels == 3:
            if self.order == "rgb":
                small = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
            planes = small.transpose(2, 0, 1).astype(np.float32)
        else:
            planes = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)[None]
        return (planes * self.scale - self.mean) / self.std


class VadAnalyzer:
    name = "vad"
    depends: tuple[str, ...] = ()

    def __init__(self, options: VadOptions, ctx: AnalyzerContext) -> None:
        self.options = options
        self.camera_id = ctx.camera_id
        self.pool = ctx.pool
        spec = ctx.pool.spec(options.model)
        if spec.kind not in ("vad", "score"):
            raise ChainError(f"vad: model {spec.name!r} is a {spec.kind}, not a vad/score model", "model")
        self.prep = Preprocessor(spec)
        self.normalizer = ScoreNormalizer(options.warmup_frames, options.alpha, options.min_std)
        self._prev: np.ndarray | None = None
        self._over_since: float | None = None
        self._under_since: float | None = None
        self._open = False
        self._severity = Severity.low
        self._peak = 0.0
        self._opened_at = 0.0
        self._updated_at = 0.0
        self._last_z = 0.0
        self._regions: list[dict[str, Any]] = []
        self.store = ModelStore(ctx.settings.data_dir / "vad")
        self.model = (self.store.load(ctx.camera_id) if options.normality else None) or NormalityModel()
        self._grey: np.ndarray | None = None
        self._grey_t = 0.0
        self._saved_at = time.monotonic()
        self._saving: asyncio.Task[None] | None = None
        if options.objects:
            self.depends = ("detector",)  # the runner hands its observation over in `deps`
        ctx.pool.attach(options.model, ctx.camera_id)
        self._attached = True

    @property
    def learning_progress(self) -> float:
        return min(1.0, self.model.learned_s / self.options.learn_s) if self.options.normality else 0.0

    def reset(self) -> None:
        """Forget what this camera learned (its file too): a new scene, or the user asked."""
        self.model = NormalityModel()
        self.normalizer.relearn()
        self.store.forget(self.camera_id)
        log.info("camera %s: VAD normality model reset", self.camera_id)

    def _features(self, frame: Frame) -> Features | None:
        if not self.options.normality:
            return None
        grey, t = grey_plane(frame.image), frame.captured_at
        prev, prev_t = self._grey, self._grey_t
        self._grey, self._grey_t = grey, t
        if prev is None or not 0 < t - prev_t <= MAX_DT:
            return None
        return extract(prev, grey, t - prev_t)

    def _objects(self, frame: Frame, deps: Mapping[str, Observation]) -> list[tuple[str, int]] | None:
        """Detections of a `detector` this VAD depends on (a chain that orders it first), as (class, cell)."""
        obs = deps.get("detector")
        if obs is None:
            return None
        w, h = frame.source_width, frame.source_height
        return [(d.label, c) for d in obs.detections for c in cells_of((d.x1, d.y1, d.x2, d.y2), w, h)]

    async def process(self, frame: Frame, deps: Mapping[str, Observation]) -> Observation:
        if not self.options.enabled:
            return Observation(self.name)
        features = self._features(frame)
        objects = self._objects(frame, deps)
        plane = self.prep.plane(frame.image)
        if self.prep.channels == 2:
            prev, self._prev = self._prev, plane
            if prev is None:
                return Observation(self.name, data={"warming_up": True})
            item = np.concatenate([prev, plane])
        else:
            item = plane
        outputs = await self.pool.infer(self.options.model, item)
        score = float(np.asarray(outputs[0], np.float64).mean())
        judgement = self._judge(features, frame.captured_at, objects)
        observation = self._decide(score, frame.captured_at, judgement)
        if observation.findings and self._regions:
            observation = _outlined(observation, frame.image, self._regions)
        if features is not None:
            self._learn(features, frame.captured_at, judgement, objects)
        self._maybe_save()
        return observation

    def _judge(self, f: Features | None, t: float, objects: list[tuple[str, int]] | None) -> Judgement | None:
        if f is None or self.model.learned_s <= 0:
            return None
        return self.model.judge(f, t, objects or ())

    def _learn(
        self, f: Features, t: float, j: Judgement | None, objects: list[tuple[str, int]] | None
    ) -> None:
        weights = None
        if self._open and j is not None:
            # an open anomaly teaches its own cells only slowly, once the model is trusted to flag them
            # (while it learns, the z-score opens episodes for anything that moves: learn those at full rate)
            slow = 1.0 - self.learning_progress * (1.0 - SLOW_WEIGHT)
            weights = np.where(j.surprise >= REGION_FLOOR, slow, 1.0)
        self.model.learn(f, t, weights)
        if objects is not None:
            self.model.learn_objects(t, f.dt, objects)

    def _maybe_save(self) -> None:
        now = time.monotonic()
        if not self.options.normality or now - self._saved_at < SAVE_EVERY_S:
            return
        if self._saving is not None and not self._saving.done():
            return
        self._saved_at = now
        data = self.model.dumps()  # a snapshot of the counts, taken on the loop; the write goes to a thread
        self._saving = asyncio.ensure_future(asyncio.to_thread(self._write, data))

    def _write(self, data: bytes) -> None:
        try:
            self.store.save(self.camera_id, data)
        except OSError:
            log.exception("camera %s: normality model not saved", self.camera_id)

    def _blend(self, z: float | None, j: Judgement | None) -> float | None:
        """Motion z while the model learns, the learned score once it has: weighted by progress."""
        if z is None:
            return None
        w = self.learning_progress
        learned = j.score if j is not None else 0.0
        return (1 - w) * z + w * learned

    def _decide(self, score: float, t: float, judgement: Judgement | None = None) -> Observation:
        opts = self.options
        motion_z = self.normalizer.z(score)
        z = self._blend(motion_z, judgement)
        over = z is not None and z >= opts.threshold
        findings: list[Finding] = []
        if z is not None:
            self._last_z = z
        regions = [r.to_json() for r in judgement.regions] if judgement is not None else []
        if over and (not self._open or z >= self._peak):  # type: ignore[operator]
            self._regions = regions  # the regions of the episode's peak
        if not self._open:
            if over:
                assert z is not None
                self._over_since = t if self._over_since is None else self._over_since
                if t - self._over_since >= opts.min_duration_s:
                    findings.append(self._start(z, score, t))
            else:
                self._over_since = None
                self.normalizer.update(score)  # only normal frames teach the scene
        elif t - self._opened_at >= opts.max_duration_s:
            # a change this long is the new normal: one event for it, then learn the scene as it is now
            findings.append(self._close(score, t, "max_duration"))
            self.normalizer.relearn()
            self.normalizer.update(score)
            if judgement is not None:
                self.model.mute(judgement.surprise >= REGION_FLOOR)
        elif over:
            assert z is not None
            self._under_since = None
            findings.extend(self._continue(z, score, t))
        else:
            self._under_since = t if self._under_since is None else self._under_since
            if t - self._under_since >= opts.hold_s:
                findings.append(self._close(score, t, "quiet"))
        data = {"raw": round(score, 5), "z": None if z is None else round(z, 3), "warming_up": z is None,
                "in_episode": self._open, "motion_z": None if motion_z is None else round(motion_z, 3),
                "learned": None if judgement is None else round(judgement.score, 3),
                "learning": round(self.learning_progress, 4), "regions": regions}  # fmt: skip
        return Observation(self.name, score=z, findings=tuple(findings), data=data)

    def _data(self, z: float, score: float, t: float) -> dict[str, Any]:
        return {
            "z": round(z, 3),
            "score": round(score, 5),
            "peak_z": round(self._peak, 3),
            "threshold": self.options.threshold,
            "model": self.options.model,
            "duration_s": round(t - self._opened_at, 3),
            "learning": round(self.learning_progress, 4),
            "regions": self._regions,
        }

    def _start(self, z: float, score: float, t: float) -> Finding:
        self._open, self._peak, self._opened_at, self._updated_at = True, z, t, t
        self._under_since = None
        self._severity = severity_for(z, self.options.threshold)
        return Finding("anomaly", "anomaly", "open", self._severity, z, self._data(z, score, t))

    def _continue(self, z: float, score: float, t: float) -> list[Finding]:
        self._peak = max(self._peak, z)
        severity = severity_for(self._peak, self.options.threshold)
        rose = severity.rank > self._severity.rank
        if not rose and t - self._updated_at < self.options.update_every_s:
            return []
        self._severity, self._updated_at = severity, t
        return [Finding("anomaly", "anomaly", "update", severity, self._peak, self._data(z, score, t))]

    def _close(self, score: float, t: float, reason: str) -> Finding:
        self._open = False
        self._over_since = self._under_since = None
        data = {**self._data(self._last_z, score, t), "reason": reason}
        return Finding("anomaly", "anomaly", "close", self._severity, self._peak, data)

    def finish(self) -> tuple[Finding, ...]:
        """Close the open episode (if any) and stop counting this camera as a user of the model."""
        if self._attached:
            self.pool.detach(self.options.model, self.camera_id)
            self._attached = False
            if self.options.normality and self.model.learned_s > 0:
                self._write(self.model.dumps())
        if not self._open:
            return ()
        self._open = False
        data = {"peak_z": round(self._peak, 3), "model": self.options.model, "reason": "camera stopped",
                "regions": self._regions}  # fmt: skip
        return (Finding("anomaly", "anomaly", "close", self._severity, self._peak, data),)


def outline(image: np.ndarray, regions: list[dict[str, Any]]) -> np.ndarray:
    """A copy of the frame with the unusual regions outlined and labelled (the event's snapshot)."""
    out = image.copy()
    h, w = out.shape[:2]
    for region in regions:
        x1, y1, x2, y2 = region["box"]
        p1, p2 = (int(x1 * w), int(y1 * h)), (int(x2 * w) - 1, int(y2 * h) - 1)
        cv2.rectangle(out, p1, p2, (0, 0, 255), 2)
        label = f"{region['component']} {region['score']:.1f}"
        at = (p1[0] + 3, max(p1[1] + 14, 14))
        cv2.putText(out, label, at, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 255), 1, cv2.LINE_AA)
    return out


def _outlined(obs: Observation, image: np.ndarray, regions: list[dict[str, Any]]) -> Observation:
    """Opening and updating findings carry the outlined frame as their snapshot."""
    picture = outline(image, regions)
    findings = tuple(
        dataclasses.replace(f, snapshot=picture) if f.phase in ("open", "update") else f for f in obs.findings
    )
    return dataclasses.replace(obs, findings=findings)


def create(options: Mapping[str, Any], ctx: AnalyzerContext) -> VadAnalyzer:
    return VadAnalyzer(VadOptions.model_validate(dict(options)), ctx)


def _models(options: Mapping[str, Any]) -> Iterable[str]:
    return (options.get("model", BUILTIN_MODEL),)


ANALYZER = AnalyzerType(
    name="vad",
    factory=create,
    options_model=VadOptions,
    models=_models,
    description="Anomaly score per frame (built-in motion energy or any score model), episodes per camera",
)
