"""The `detector` analyzer: a YOLO-family ONNX model via the shared pool, tracked, filtered by zones.

Per frame: letterbox -> `pool.infer` -> decode + class-aware NMS -> boxes in the stream's pixels ->
class / area / mask filters -> ByteTrack-style tracking. Events follow tracks, not frames: one `open`
when a confirmed track of a watched class appears (or enters a zone when zones are set), an `update`
when its zones change or every `update_every_s` while it stays, a `close` once it has been gone (or out
of every zone) for `lost_after_s`. The event's snapshot is the track's best frame with its box drawn
(re-shot as confidence improves); its data carries a short track summary (path, first/last seen).

Options (all validated at camera create/patch; a bad one raises DetectorOptionError naming it):
- `model` (required): a registered model of kind `detector`.
- `classes`: class names to watch (default: every class of the model).
- `min_confidence` (0.4), `iou_threshold` (0.45, NMS).
- `min_area`: smallest box kept. <= 1 is a fraction of the frame's area, > 1 is in px² of the
  stream's own resolution. Default 0 (keep all).
- `zones`: [{"name", "polygon": [[x, y], ...]}] in normalised 0..1 coordinates; `masks`: polygons
  whose detections are ignored. Both test a box's bottom-centre point.
- `min_hits` (2): frames a track needs before it counts (filters one-frame flickers).
- `lost_after_s` (2.0): grace before a lost track (or one that left the zones) is closed.
- `update_every_s` (10.0), `severity` ("medium").
- `mode` ("full" | "regions"): in region mode only where the picture changed is searched (regions.py),
  the full frame every `full_every_s` (5.0) while tracks exist, at most `max_regions` (4) regions and
  never more region pixels than one full run; `region_model`: a smaller-input twin for the regions.
- `rules`: loitering / line_crossing / occupancy rules on the tracks (zone_rules.py), each raising
  events of its own type.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from app.analyzers.base import Detection, Finding, FindingPhase, Observation
from app.analyzers.regions import MotionBoxes, Region, plan_regions
from app.analyzers.registry import AnalyzerContext, AnalyzerType
from app.analyzers.tracking import ByteTracker
from app.analyzers.yolo import Decoded, Letterbox, decode, letterbox, nms, to_source, to_tensor
from app.analyzers.zone_rules import ZoneRules, parse_rules
from app.analyzers.zones import Polygon, Zone, anchor, masked, parse_masks, parse_zones, zones_of
from app.errors import ArgusError, Invalid
from app.kit.severity import Severity
from app.metrics import LINE_CROSSINGS
from app.stream.frame import Frame

if TYPE_CHECKING:
    from app.inference.manifest import ModelSpec
    from app.inference.pool import ResourcePool

LOW_CONFIDENCE = 0.1  # ByteTrack keeps tracks alive with detections down to this score
SNAPSHOT_GAIN = 0.05  # confidence a new frame must add over the snapshot's to replace it
SNAPSHOT_EVERY_S = 1.0
REGION_MIN_SIDE = 0.4  # a region's smallest side, of the analysed image's short side (at most ~2.5x zoom)
PATH_POINTS = 32  # track path points kept per event (older ones thinned out)


class DetectorOptionError(Invalid, ValueError):
    """A bad detector option: a 422 whose `field` names it (options.<name>)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"detector option {option}: {message}", f"options.{option}")
        self.option = option


class DetectorOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    classes: tuple[str, ...] | None = None
    min_confidence: float = Field(0.4, gt=0, le=1)
    iou_threshold: float = Field(0.45, gt=0, le=1)
    min_area: float = Field(0.0, ge=0)
    zones: list[dict[str, Any]] = Field(default_factory=list)
    masks: list[Any] = Field(default_factory=list)
    min_hits: int = Field(2, ge=1, le=30)
    lost_after_s: float = Field(2.0, gt=0, le=600)
    update_every_s: float = Field(10.0, gt=0)
    severity: Severity = Severity.medium
    # "regions": detect only where the picture changed (and on the full frame every full_every_s while
    # tracks exist); a calm camera runs no detector. "full": every analysed frame, whole.
    mode: Literal["full", "regions"] = "full"
    region_model: str | None = None  # a smaller-input twin of `model` for regions (same classes)
    full_every_s: float = Field(5.0, gt=0, le=600)
    max_regions: int = Field(4, ge=1, le=16)
    # loitering / line_crossing / occupancy rules on the tracks (app/analyzers/zone_rules.py)
    rules: list[dict[str, Any]] = Field(default_factory=list, max_length=32)

    @model_validator(mode="after")
    def _rules(self) -> DetectorOptions:
        rules = parse_rules(self.rules, parse_zones(self.zones))
        object.__setattr__(self, "rules", [r.model_dump(mode="json", exclude_defaults=True) for r in rules])
        return self

    @field_validator("zones", mode="before")
    @classmethod
    def _zones(cls, v: Any) -> list[dict[str, Any]]:
        return [{"name": z.name, "polygon": z.polygon.to_json()} for z in parse_zones(v)]

    @field_validator("masks", mode="before")
    @classmethod
    def _masks(cls, v: Any) -> list[Any]:
        return [m.to_json() for m in parse_masks(v)]

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> DetectorOptions:
        try:
            return cls.model_validate(dict(raw or {}))
        except ValidationError as exc:
            err = exc.errors()[0]
            option = ".".join(str(p) for p in err["loc"]) or "options"
            raise DetectorOptionError(option, str(err["msg"])) from None


@dataclass
class _Episode:
    track_id: int
    class_id: int
    label: str
    box: tuple[float, float, float, float]
    confidence: float
    max_confidence: float
    zones: tuple[str, ...] = ()
    opened: bool = False
    last_report: float = 0.0
    outside_since: float | None = None
    first_seen: float = 0.0
    last_seen: float = 0.0
    path: list[tuple[float, float, float]] = field(default_factory=list)  # (t, x, y) normalised anchor
    snapshot_confidence: float = 0.0  # confidence of the frame the event's snapshot shows
    snapshot_at: float = 0.0
    snapshot_box: tuple[float, float, float, float] | None = None


class Detector:
    name = "detector"
    depends: tuple[str, ...] = ()

    def __init__(self, options: DetectorOptions, pool: ResourcePool, camera_id: int | None = None) -> None:
        self.options = options
        self._pool = pool
        self._camera_id = camera_id
        spec = self._spec(pool, options.model)
        self.spec = spec
        self.class_names: tuple[str, ...] = spec.class_names
        self.input_width, self.input_height = _input_size(spec)
        self._watched = self._class_ids(options.classes)
        self.zones: tuple[Zone, ...] = parse_zones(options.zones)
        self.masks: tuple[Polygon, ...] = parse_masks(options.masks)
        self.tracker = ByteTracker(
            high_threshold=options.min_confidence,
            lost_after_s=options.lost_after_s,
            min_hits=options.min_hits,
        )
        self._episodes: dict[int, _Episode] = {}
        rules = parse_rules(options.rules, self.zones)
        for i, rule in enumerate(rules):
            if rule.classes is not None and (unknown := set(rule.classes) - set(self.class_names)):
                raise DetectorOptionError(f"rules.{i}.classes", f"unknown class {sorted(unknown)[0]!r}")
        self.rules = ZoneRules(rules, self.zones, options.severity, options.update_every_s,
                               on_cross=self._count_crossing)  # fmt: skip
        self.region_spec = self._region_spec(pool, options)
        self.motion = MotionBoxes()
        self._last_full = float("-inf")
        self._real_seen: dict[int, float] = {}  # track id -> last time a real (not carried) box matched it
        self.passes: Counter[str] = Counter()  # "full" / "regions" / "idle" frames, and "region" runs
        # Regions only while cheaper than one full frame: as many as fit in its input pixels (at least one,
        # which costs a full frame's run when the region model is the model itself, but zooms in).
        region_w, region_h = _input_size(self.region_spec)
        fit = (self.input_width * self.input_height) // (region_w * region_h)
        self._max_regions = max(1, min(options.max_regions, fit))
        if camera_id is not None:
            for model in {options.model, self.region_spec.name}:
                pool.attach(model, camera_id)

    @staticmethod
    def _spec(pool: ResourcePool, model: str) -> ModelSpec:
        try:
            spec = pool.spec(model)
        except ArgusError:
            raise DetectorOptionError("model", f"no model named {model!r} is registered") from None
        if spec.kind != "detector" or spec.layout is None:
            raise DetectorOptionError("model", f"{model!r} is a {spec.kind} model, not a detector")
        return spec

    def _region_spec(self, pool: ResourcePool, options: DetectorOptions) -> ModelSpec:
        if options.region_model is None:
            return self.spec
        try:
            spec = self._spec(pool, options.region_model)
        except DetectorOptionError as exc:
            raise DetectorOptionError("region_model", str(exc).split(": ", 1)[-1]) from None
        if spec.class_names != self.class_names:
            raise DetectorOptionError(
                "region_model", f"{spec.name!r} does not have {options.model!r}'s classes"
            )
        return spec

    def _class_ids(self, classes: tuple[str, ...] | None) -> frozenset[int] | None:
        if classes is None:
            return None
        unknown = [c for c in classes if c not in self.class_names]
        if unknown:
            known = ", ".join(self.class_names[:20]) + (" ..." if len(self.class_names) > 20 else "")
            raise DetectorOptionError("classes", f"unknown class {unknown[0]!r} (model knows: {known})")
        return frozenset(self.class_names.index(c) for c in classes)

    # -- per frame ----------------------------------------------------------------------------------

    async def process(self, frame: Frame, deps: Mapping[str, Observation]) -> Observation:
        t = frame.captured_at
        regions: list[Region] | None = None
        if self.options.mode == "regions":
            plan = await asyncio.to_thread(self._plan, frame)
            if plan == "idle":
                self.passes["idle"] += 1
                still = self._still()
                return self._observation(still, self._apply_rules(still, [], frame), "idle", 0)
            regions = None if plan == "full" else plan
        if regions is None:
            found = await self._detect_full(frame)
            self._last_full = t
            real = len(found)
        else:
            found = await self._detect_regions(frame, regions)
            real = len(found)
            found = self._carry(found, regions, frame)
        self.passes["full" if regions is None else "regions"] += 1
        update = self.tracker.update(found.boxes, found.scores, found.class_ids, t)
        for i in range(real):
            if update.track_ids[i] is not None:
                self._real_seen[update.track_ids[i]] = t  # type: ignore[index]
        detections = tuple(
            _detection(
                found.boxes[i],
                float(found.scores[i]),
                int(found.class_ids[i]),
                self.class_names[int(found.class_ids[i])],
                update.track_ids[i],
            )
            for i in range(len(found))
            if found.scores[i] >= self.options.min_confidence
        )
        lost = [tr.id for tr in update.lost if tr.id is not None]
        for track_id in lost:
            self._real_seen.pop(track_id, None)
        findings = self._follow(detections, lost, frame) + self._apply_rules(detections, lost, frame)
        return self._observation(
            detections, findings, "full" if regions is None else "regions", len(regions or ())
        )

    def _observation(
        self, detections: tuple[Detection, ...], findings: tuple[Finding, ...], mode: str, regions: int
    ) -> Observation:
        return Observation(
            analyzer=self.name,
            score=max((d.confidence for d in detections), default=None),
            detections=detections,
            findings=findings,
            data={
                "model": self.options.model,
                "tracks": sorted(e.track_id for e in self._episodes.values()),
                "pass": mode,
                "regions": regions,
            },
        )

    def _plan(self, frame: Frame) -> Literal["idle", "full"] | list[Region]:
        """Regions to detect in, "full", or "idle" (nothing moved and no full-frame refresh is due)."""
        boxes = self.motion.update(frame.image)
        if boxes is None:
            return "full"  # no reference frame yet
        if self.tracker.tracks and frame.captured_at - self._last_full >= self.options.full_every_s:
            return "full"  # still objects keep their tracks; a missed one is found again
        if not boxes:
            return "idle"
        short = min(frame.width, frame.height)
        plan = plan_regions(
            boxes, (frame.width, frame.height), min_side=max(32, round(short * REGION_MIN_SIDE)),
            max_regions=self._max_regions,
        )  # fmt: skip
        return "full" if plan is None else plan

    async def _detect_full(self, frame: Frame) -> Decoded:
        tensor, box = await asyncio.to_thread(self.prepare, frame.image)
        outputs = await self._pool.infer(self.options.model, tensor)
        return await asyncio.to_thread(self.postprocess, outputs[0], box, frame)

    async def _detect_regions(self, frame: Frame, regions: list[Region]) -> Decoded:
        """Each region through the (region) model, concurrently: the pool batches them with each other and
        with other cameras' frames. Boxes come back in stream pixels, NMS'd across regions."""
        spec = self.region_spec
        size = _input_size(spec)
        crops = [frame.image[y1:y2, x1:x2] for x1, y1, x2, y2 in regions]
        prepared = await asyncio.to_thread(lambda: [self.prepare(c, spec, size) for c in crops])
        outputs = await asyncio.gather(*(self._pool.infer(spec.name, tensor) for tensor, _ in prepared))
        self.passes["region"] += len(regions)

        def post() -> Decoded:
            parts = []
            for (_, box), out, (x1, y1, _, _) in zip(prepared, outputs, regions, strict=True):
                found = self._candidates(out[0], box, spec)
                found.boxes[:, [0, 2]] += x1
                found.boxes[:, [1, 3]] += y1
                parts.append(found)
            merged = Decoded(
                np.concatenate([p.boxes for p in parts]) if parts else np.zeros((0, 4), np.float32),
                np.concatenate([p.scores for p in parts]) if parts else np.zeros(0, np.float32),
                np.concatenate([p.class_ids for p in parts]) if parts else np.zeros(0, np.int64),
            )
            return self._filter(nms(merged, self.options.iou_threshold), frame)

        return await asyncio.to_thread(post)

    def _apply_rules(
        self, detections: tuple[Detection, ...], lost: list[int], frame: Frame
    ) -> tuple[Finding, ...]:
        if not self.rules.rules:
            return ()
        w, h = frame.source_width, frame.source_height
        anchors = [anchor((d.x1, d.y1, d.x2, d.y2), w, h) for d in detections]
        out = []
        for finding, d in self.rules.step(detections, anchors, lost, frame.captured_at):
            if d is not None:
                snapshot = draw_box(frame, (d.x1, d.y1, d.x2, d.y2), f"{d.label} {d.confidence:.2f}")
                finding = replace(finding, snapshot=snapshot)
            out.append(finding)
        return tuple(out)

    def _count_crossing(self, line: str, direction: str, label: str) -> None:
        LINE_CROSSINGS.labels(str(self._camera_id or ""), line, direction, label).inc()

    def status(self) -> dict[str, Any]:
        """For the camera's status: line counts and how frames were searched."""
        return {"lines": self.rules.line_counts(), "passes": dict(self.passes), "mode": self.options.mode}

    def _still(self) -> tuple[Detection, ...]:
        """Nothing moved: the tracked objects are where they were (the tracker is not aged: no news)."""
        return tuple(
            _detection(tr.box, float(tr.score), tr.class_id, self.class_names[tr.class_id], tr.id)
            for tr in self.tracker.confirmed()
            if self._real_seen.get(tr.id, float("-inf")) >= self._last_full  # type: ignore[arg-type]
            and tr.score >= self.options.min_confidence
        )

    def _carry(self, found: Decoded, regions: list[Region], frame: Frame) -> Decoded:
        """Confirmed tracks outside every region were not looked at, not lost: feed their last box so they
        keep their ids until the next full frame, which must see them again for them to go on."""
        sx, sy = frame.width / frame.source_width, frame.height / frame.source_height
        extra = []
        for tr in self.tracker.confirmed():
            if self._real_seen.get(tr.id, float("-inf")) < self._last_full:  # type: ignore[arg-type]
                continue
            x1, y1, x2, y2 = tr.box[0] * sx, tr.box[1] * sy, tr.box[2] * sx, tr.box[3] * sy
            if any(x1 < r[2] and r[0] < x2 and y1 < r[3] and r[1] < y2 for r in regions):
                continue
            extra.append(tr)
        if not extra:
            return found
        return Decoded(
            np.concatenate([found.boxes, np.array([tr.box for tr in extra], np.float32)]),
            np.concatenate([found.scores, np.array([tr.score for tr in extra], np.float32)]),
            np.concatenate([found.class_ids, np.array([tr.class_id for tr in extra], np.int64)]),
        )

    def prepare(
        self, image: np.ndarray, spec: ModelSpec | None = None, size: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, Letterbox]:
        spec = spec or self.spec
        norm = spec.normalization
        width, height = size or (self.input_width, self.input_height)
        boxed, box = letterbox(image, width, height)
        if norm.channel_order == "gray":
            boxed = cv2.cvtColor(boxed, cv2.COLOR_BGR2GRAY)[:, :, None]
        tensor = to_tensor(
            boxed, rgb=norm.channel_order == "rgb", scale=norm.scale, mean=_rgb(norm.mean), std=_rgb(norm.std)
        )
        return tensor, box

    def postprocess(self, output: np.ndarray, box: Letterbox, frame: Frame) -> Decoded:
        """Raw output -> candidates in stream pixels that pass the class, area and mask filters."""
        found = nms(self._candidates(output, box, self.spec), self.options.iou_threshold)
        return self._filter(found, frame)

    def _candidates(self, output: np.ndarray, box: Letterbox, spec: ModelSpec) -> Decoded:
        """Raw output -> watched-class candidates in the pixels of the image that was letterboxed."""
        assert spec.layout is not None
        low = min(LOW_CONFIDENCE, self.options.min_confidence)
        found = decode(output, spec.layout, len(self.class_names), low)
        if self._watched is not None and len(found):
            found = found.take(np.flatnonzero(np.isin(found.class_ids, list(self._watched))))
        return Decoded(box.to_image(found.boxes), found.scores, found.class_ids)

    def _filter(self, found: Decoded, frame: Frame) -> Decoded:
        """Analysed-image boxes -> stream pixels, then the area and mask filters."""
        src_w, src_h = frame.source_width, frame.source_height
        boxes = to_source(found.boxes, Letterbox(1.0, 0.0, 0.0), (frame.width, frame.height), (src_w, src_h))
        found = Decoded(boxes, found.scores, found.class_ids)
        keep = np.ones(len(found), dtype=bool)
        if self.options.min_area > 0:
            min_px = (
                self.options.min_area * src_w * src_h if self.options.min_area <= 1 else self.options.min_area
            )
            keep &= (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) >= min_px
        if self.masks:
            keep &= np.array([not masked(anchor(b, src_w, src_h), self.masks) for b in boxes], dtype=bool)
        return found.take(np.flatnonzero(keep))

    # -- episodes -----------------------------------------------------------------------------------

    def _follow(
        self, detections: tuple[Detection, ...], lost: list[int], frame: Frame
    ) -> tuple[Finding, ...]:
        t = frame.captured_at
        findings: list[Finding] = []
        for d in detections:
            if d.track_id is None:
                continue
            ep = self._episodes.get(d.track_id)
            if ep is None:
                ep = _Episode(
                    d.track_id, d.class_id, d.label, (d.x1, d.y1, d.x2, d.y2), d.confidence, d.confidence,
                    first_seen=t,
                )  # fmt: skip
                self._episodes[d.track_id] = ep
            ep.box, ep.confidence, ep.last_seen = (d.x1, d.y1, d.x2, d.y2), d.confidence, t
            ep.max_confidence = max(ep.max_confidence, d.confidence)
            point = anchor(ep.box, frame.source_width, frame.source_height)
            _extend_path(ep.path, t, point)
            if not self.zones:
                phase = self._step_anywhere(ep, t)
            else:
                phase = self._step_zones(ep, zones_of(point, self.zones), t)
            snapshot = None
            if phase == "open" or (ep.opened and self._better_picture(ep, t)):
                snapshot = annotate(frame, ep)
                ep.snapshot_confidence, ep.snapshot_at, ep.snapshot_box = ep.confidence, t, ep.box
                phase = phase or "update"
            if phase is not None:
                findings.append(self._finding(ep, phase, t, snapshot=snapshot))
        for ep in list(self._episodes.values()):
            if (
                ep.opened
                and ep.outside_since is not None
                and t - ep.outside_since > self.options.lost_after_s
            ):
                ep.opened, ep.outside_since = False, None
                findings.append(self._finding(ep, "close", t, reason="left_zone"))
        for track_id in lost:
            ep = self._episodes.pop(track_id, None)
            if ep is not None and ep.opened:
                findings.append(self._finding(ep, "close", t, reason="lost"))
        return tuple(findings)

    def _step_anywhere(self, ep: _Episode, t: float) -> FindingPhase | None:
        if not ep.opened:
            ep.opened = True
            return "open"
        return "update" if t - ep.last_report >= self.options.update_every_s else None

    def _step_zones(self, ep: _Episode, zones: tuple[str, ...], t: float) -> FindingPhase | None:
        if not zones:
            if ep.opened and ep.outside_since is None:
                ep.outside_since = t
            return None
        ep.outside_since = None
        changed, ep.zones = zones != ep.zones, zones
        if not ep.opened:
            ep.opened = True
            return "open"
        return "update" if changed or t - ep.last_report >= self.options.update_every_s else None

    def _better_picture(self, ep: _Episode, t: float) -> bool:
        """The event shows the track's best frame: re-shot when confidence beats the shown one by
        SNAPSHOT_GAIN, at most every SNAPSHOT_EVERY_S (each one is a JPEG encode and a file write)."""
        return (
            ep.confidence >= ep.snapshot_confidence + SNAPSHOT_GAIN and t - ep.snapshot_at >= SNAPSHOT_EVERY_S
        )

    def _finding(
        self, ep: _Episode, phase: FindingPhase, t: float, snapshot: np.ndarray | None = None, **extra: Any
    ) -> Finding:
        ep.last_report = t
        data: dict[str, Any] = {
            "label": ep.label,
            "class_id": ep.class_id,
            "confidence": round(ep.confidence, 4),
            "max_confidence": round(ep.max_confidence, 4),
            "box": [round(v, 1) for v in ep.box],
            "zones": list(ep.zones),
            "track_id": ep.track_id,
            "track": track_summary(ep),
            "snapshot_box": [round(v, 1) for v in ep.snapshot_box] if ep.snapshot_box else None,
            **extra,
        }
        return Finding(
            kind="object", key=f"track:{ep.track_id}", phase=phase, severity=self.options.severity,
            score=ep.max_confidence, data=data, snapshot=snapshot,
        )  # fmt: skip

    def finish(self) -> tuple[Finding, ...]:
        """Close every open episode and forget the tracks (the camera is stopping)."""
        findings = tuple(
            self._finding(ep, "close", ep.last_report, reason="stopped")
            for ep in self._episodes.values()
            if ep.opened
        )
        findings += tuple(self.rules.finish())
        self._episodes.clear()
        self.tracker = ByteTracker(
            high_threshold=self.options.min_confidence,
            lost_after_s=self.options.lost_after_s,
            min_hits=self.options.min_hits,
        )
        self.motion = MotionBoxes()
        self._last_full = float("-inf")
        self._real_seen.clear()
        if self._camera_id is not None:
            for model in {self.options.model, self.region_spec.name}:
                self._pool.detach(model, self._camera_id)
        return findings


def _detection(
    box: np.ndarray, confidence: float, class_id: int, label: str, track_id: int | None
) -> Detection:
    x1, y1, x2, y2 = (float(v) for v in box)
    return Detection(x1, y1, x2, y2, confidence, class_id, label, track_id)


def _extend_path(path: list[tuple[float, float, float]], t: float, point: tuple[float, float]) -> None:
    """Keep a short path: a point when the anchor moved 1 % of the frame or a second passed; when full,
    drop every other point (the first and the newest stay), so a long track keeps its whole shape."""
    if (
        path
        and abs(point[0] - path[-1][1]) < 0.01
        and abs(point[1] - path[-1][2]) < 0.01
        and t - path[-1][0] < 1
    ):
        return
    path.append((t, point[0], point[1]))
    if len(path) > PATH_POINTS:
        path[:] = path[:-1:2] + path[-1:]


def track_summary(ep: _Episode) -> dict[str, Any]:
    """What a consumer needs to draw the track: first/last seen (epoch s), the path of the box's
    bottom-centre in normalised [x, y, seconds since first seen], the best confidence."""
    return {
        "first_seen": round(ep.first_seen, 3),
        "last_seen": round(ep.last_seen, 3),
        "max_confidence": round(ep.max_confidence, 4),
        "path": [[round(x, 4), round(y, 4), round(pt - ep.first_seen, 2)] for pt, x, y in ep.path],
    }


def annotate(frame: Frame, ep: _Episode) -> np.ndarray:
    """The frame with the track's box and label drawn (a copy: frames are shared and never mutated)."""
    return draw_box(frame, ep.box, f"{ep.label} {ep.confidence:.2f}")


def draw_box(frame: Frame, box: tuple[float, float, float, float], text: str) -> np.ndarray:
    """A copy of the frame with a box (stream pixels) and its label drawn."""
    image = frame.image.copy()
    sx, sy = frame.width / frame.source_width, frame.height / frame.source_height
    x1, y1, x2, y2 = (round(v) for v in (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy))
    thickness = max(2, round(frame.width / 320))
    cv2.rectangle(image, (x1, y1), (x2, y2), BOX_COLOR, thickness)
    scale = max(0.4, frame.width / 1600)
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    top = max(0, y1 - th - 6)
    cv2.rectangle(image, (x1, top), (x1 + tw + 6, top + th + 6), BOX_COLOR, -1)
    cv2.putText(
        image, text, (x1 + 3, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA
    )
    return image


BOX_COLOR = (0, 255, 255)  # BGR yellow: visible on grass, asphalt and night footage alike


def _rgb(values: tuple[float, ...]) -> tuple[float, float, float]:
    return (values[0],) * 3 if len(values) == 1 else (values[0], values[1], values[2])


def _input_size(spec: ModelSpec) -> tuple[int, int]:
    if spec.input_size is not None:
        return spec.input_size
    shape = spec.input_shape or ()
    if len(shape) == 4 and shape[2] and shape[3]:
        return int(shape[3]), int(shape[2])
    raise DetectorOptionError(
        "model", f"{spec.name!r} has a dynamic input size and no input_size in its manifest"
    )


def create_detector(options: Mapping[str, Any], ctx: AnalyzerContext) -> Detector:
    """The registry's factory: validate options against the model, then build the analyzer."""
    return Detector(DetectorOptions.parse(options), ctx.pool, ctx.camera_id)


ANALYZER = AnalyzerType(
    name="detector",
    factory=create_detector,
    options_model=DetectorOptions,
    models=lambda options: [
        options["model"],
        *([options["region_model"]] if options.get("region_model") else []),
    ],
    description="YOLO-family object detection with tracking, zones and masks",
)
