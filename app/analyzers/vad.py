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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from app.analyzers.base import Finding, Observation, SeverityName
from app.analyzers.normalizer import ScoreNormalizer
from app.analyzers.registry import AnalyzerContext, AnalyzerType, ChainError
from app.inference.builtin_vad import NAME as BUILTIN_MODEL
from app.inference.manifest import ModelSpec
from app.stream.frame import Frame


class VadOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    model: str = BUILTIN_MODEL
    threshold: float = Field(3.0, gt=0, le=100, description="z-score over the camera's running mean")
    warmup_frames: int = Field(25, ge=2, le=100_000, description="frames that only learn the scene")
    min_duration_s: float = Field(0.0, ge=0, le=60, description="over threshold this long before opening")
    hold_s: float = Field(2.0, ge=0, le=600, description="under threshold this long before closing")
    update_every_s: float = Field(10.0, gt=0, le=3600, description="refresh an open episode this often")
    max_duration_s: float = Field(
        300.0, gt=0, le=86_400, description="close a longer episode and re-learn the scene (a lasting change)"
    )
    alpha: float = Field(0.01, gt=0, lt=1, description="how fast the running statistics follow the scene")
    min_std: float = Field(0.1, gt=0, description="floor of the std, in raw score units")


def severity_for(z: float, threshold: float) -> SeverityName:
    """Bands in multiples of the threshold: [1, 4) low, [4, 10) medium, [10, 25) high, >= 25 critical.

    Wide on purpose: on a still scene (std at its floor) a person crossing gives z ~ 10-30 (low/medium),
    the whole picture changing (lights, tampering, smoke) gives z in the hundreds (critical).
    """
    ratio = z / threshold
    if ratio >= 25:
        return "critical"
    if ratio >= 10:
        return "high"
    if ratio >= 4:
        return "medium"
    return "low"


_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}


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
        self._severity: SeverityName = "low"
        self._peak = 0.0
        self._opened_at = 0.0
        self._updated_at = 0.0
        self._last_z = 0.0
        ctx.pool.attach(options.model, ctx.camera_id)
        self._attached = True

    async def process(self, frame: Frame, deps: Mapping[str, Observation]) -> Observation:
        if not self.options.enabled:
            return Observation(self.name)
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
        return self._decide(score, frame.captured_at)

    def _decide(self, score: float, t: float) -> Observation:
        opts = self.options
        z = self.normalizer.z(score)
        over = z is not None and z >= opts.threshold
        findings: list[Finding] = []
        if z is not None:
            self._last_z = z
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
        elif over:
            assert z is not None
            self._under_since = None
            findings.extend(self._continue(z, score, t))
        else:
            self._under_since = t if self._under_since is None else self._under_since
            if t - self._under_since >= opts.hold_s:
                findings.append(self._close(score, t, "quiet"))
        data = {"raw": round(score, 5), "z": None if z is None else round(z, 3), "warming_up": z is None,
                "in_episode": self._open}  # fmt: skip
        return Observation(self.name, score=z, findings=tuple(findings), data=data)

    def _data(self, z: float, score: float, t: float) -> dict[str, Any]:
        return {
            "z": round(z, 3),
            "score": round(score, 5),
            "peak_z": round(self._peak, 3),
            "threshold": self.options.threshold,
            "model": self.options.model,
            "duration_s": round(t - self._opened_at, 3),
        }

    def _start(self, z: float, score: float, t: float) -> Finding:
        self._open, self._peak, self._opened_at, self._updated_at = True, z, t, t
        self._under_since = None
        self._severity = severity_for(z, self.options.threshold)
        return Finding("anomaly", "anomaly", "open", self._severity, z, self._data(z, score, t))

    def _continue(self, z: float, score: float, t: float) -> list[Finding]:
        self._peak = max(self._peak, z)
        severity = severity_for(self._peak, self.options.threshold)
        rose = _RANK[severity] > _RANK[self._severity]
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
        if not self._open:
            return ()
        self._open = False
        data = {"peak_z": round(self._peak, 3), "model": self.options.model, "reason": "camera stopped"}
        return (Finding("anomaly", "anomaly", "close", self._severity, self._peak, data),)


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
