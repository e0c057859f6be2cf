"""Zone rules beyond presence, on the detector's tracks: loitering, line crossing, occupancy.

Each rule turns tracks into findings of its own event type, so alert rules match them by type:
- `loitering`: a tracked object of a watched class stays in a zone longer than `seconds`; one event per
  track and stay (open when the dwell passes `seconds`, closed when it leaves or is lost), with `dwell_s`.
- `line_crossing`: a directed line [[x, y], [x, y]] (normalised); a track's bottom-centre crossing it is
  counted `in` (from the left of the line, looking from its first point to its second, to its right; in
  the picture, where y grows downwards, a line drawn left to right counts `in` for objects moving down)
  or `out`. Counts per line, direction and class live on the analyzer (camera status) and in /metrics;
  each crossing is also an instant event (opened and closed at once) when its direction is watched.
- `occupancy`: more than `max` tracked objects of the classes in a zone; one event while it lasts, updated
  when the count changes, closed once it has been at or under `max` for `hold_s`.
A side must be left by HYSTERESIS of the frame before a crossing counts, so a box jittering on the line
is not counted back and forth.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.analyzers.base import Detection, Finding, FindingPhase
from app.analyzers.zones import Point, Zone
from app.kit.severity import Severity

HYSTERESIS = 0.01


class RuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["loitering", "line_crossing", "occupancy"]
    name: str = Field("", max_length=64)  # default: the zone (or "line") name
    zone: str | None = None
    classes: tuple[str, ...] | None = None
    seconds: float = Field(30.0, gt=0, le=86_400)  # loitering
    max: int = Field(1, ge=0, le=1000)  # occupancy: an event when MORE than this many
    hold_s: float = Field(2.0, ge=0, le=600)  # occupancy: under the limit this long before closing
    line: tuple[tuple[float, float], tuple[float, float]] | None = None  # line_crossing
    direction: Literal["both", "in", "out"] = "both"  # which crossings raise events (all are counted)
    severity: Severity | None = None

    @model_validator(mode="after")
    def _fields(self) -> RuleSpec:
        if self.type in ("loitering", "occupancy") and not self.zone:
            raise ValueError(f"a {self.type} rule needs a zone")
        if self.type == "line_crossing":
            if self.line is None:
                raise ValueError("a line_crossing rule needs a line [[x, y], [x, y]]")
            if any(not (0 <= v <= 1) for p in self.line for v in p):
                raise ValueError("line coordinates are normalised, 0..1")
            if self.line[0] == self.line[1]:
                raise ValueError("a line needs two different points")
        return self

    @property
    def label(self) -> str:
        return self.name or self.zone or "line"


def _side(line: tuple[tuple[float, float], tuple[float, float]], p: Point) -> float:
    (ax, ay), (bx, by) = line
    return (bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax)


def _crosses_segment(line: tuple[tuple[float, float], tuple[float, float]], p: Point, q: Point) -> bool:
    """Does the move p -> q pass the line's segment (not just its infinite extension)?"""
    a, b = line
    d1, d2 = _side((p, q), a), _side((p, q), b)
    return d1 * d2 <= 0


@dataclass
class _Loiter:
    entered: float
    opened: bool = False
    last_report: float = 0.0


@dataclass
class _Occupancy:
    opened: bool = False
    under_since: float | None = None
    count: int = 0
    peak: int = 0


@dataclass
class ZoneRules:
    rules: tuple[RuleSpec, ...]
    zones: tuple[Zone, ...]
    severity: Severity
    update_every_s: float = 10.0
    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (line, direction, class)
    _loiter: dict[tuple[int, int], _Loiter] = field(default_factory=dict)  # (rule index, track) ->
    _occupancy: dict[int, _Occupancy] = field(default_factory=dict)
    _sides: dict[tuple[int, int], tuple[float, Point]] = field(default_factory=dict)  # last definite side
    _crossings: int = 0
    on_cross: Callable[[str, str, str], None] | None = None  # (line, direction, class): metrics

    def step(
        self, detections: Sequence[Detection], anchors: Sequence[Point], lost: Sequence[int], t: float
    ) -> list[tuple[Finding, Detection | None]]:
        """Findings for this frame, each with the detection to draw on its snapshot (None: none)."""
        out: list[tuple[Finding, Detection | None]] = []
        zones = {z.name: z for z in self.zones}
        for i, rule in enumerate(self.rules):
            picked = [
                (d, p)
                for d, p in zip(detections, anchors, strict=True)
                if d.track_id is not None and (rule.classes is None or d.label in rule.classes)
            ]
            if rule.type == "loitering":
                out += self._loitering(i, rule, zones[rule.zone or ""], picked, lost, t)
            elif rule.type == "occupancy":
                out += self._occupancy_step(i, rule, zones[rule.zone or ""], picked, t)
            else:
                out += self._line(i, rule, picked, lost, t)
        return out

    def _finding(
        self,
        rule: RuleSpec,
        kind: str,
        key: str,
        phase: FindingPhase,
        score: float | None,
        data: dict[str, Any],
    ) -> Finding:
        return Finding(
            kind=kind,
            key=key,
            phase=phase,
            severity=rule.severity or self.severity,
            score=score,
            data=data,
        )

    def _loitering(
        self,
        i: int,
        rule: RuleSpec,
        zone: Zone,
        picked: list[tuple[Detection, Point]],
        lost: Sequence[int],
        t: float,
    ) -> list[tuple[Finding, Detection | None]]:
        out: list[tuple[Finding, Detection | None]] = []
        inside = {d.track_id: d for d, p in picked if zone.polygon.contains(*p)}
        for track_id, d in inside.items():
            st = self._loiter.setdefault((i, track_id), _Loiter(entered=t))  # type: ignore[arg-type]
            dwell = t - st.entered
            data = {
                "rule": rule.label,
                "zone": zone.name,
                "label": d.label,
                "track_id": track_id,
                "dwell_s": round(dwell, 1),
                "seconds": rule.seconds,
                "confidence": round(d.confidence, 4),
            }
            key = f"loitering:{rule.label}:{track_id}"
            if not st.opened and dwell >= rule.seconds:
                st.opened, st.last_report = True, t
                out.append((self._finding(rule, "loitering", key, "open", d.confidence, data), d))
            elif st.opened and t - st.last_report >= self.update_every_s:
                st.last_report = t
                out.append((self._finding(rule, "loitering", key, "update", d.confidence, data), None))
        seen = {d.track_id for d, _ in picked}
        for (ri, track_id), st in list(self._loiter.items()):
            # a track missing from one frame (unmatched, not lost) keeps its stay; seen outside ends it
            if ri != i or (track_id not in lost and (track_id in inside or track_id not in seen)):
                continue
            del self._loiter[(ri, track_id)]
            if st.opened:
                data = {
                    "rule": rule.label,
                    "zone": zone.name,
                    "track_id": track_id,
                    "dwell_s": round(t - st.entered, 1),
                    "reason": "lost" if track_id in lost else "left_zone",
                }
                out.append(
                    (
                        self._finding(
                            rule, "loitering", f"loitering:{rule.label}:{track_id}", "close", None, data
                        ),
                        None,
                    )
                )
        return out

    def _occupancy_step(
        self, i: int, rule: RuleSpec, zone: Zone, picked: list[tuple[Detection, Point]], t: float
    ) -> list[tuple[Finding, Detection | None]]:
        st = self._occupancy.setdefault(i, _Occupancy())
        inside = [d for d, p in picked if zone.polygon.contains(*p)]
        count, changed = len(inside), len(inside) != st.count
        st.count = count
        key = f"occupancy:{rule.label}"
        data = {
            "rule": rule.label,
            "zone": zone.name,
            "count": count,
            "max": rule.max,
            "classes": list(rule.classes) if rule.classes else None,
            "track_ids": sorted(d.track_id for d in inside if d.track_id is not None),
        }
        best = max(inside, key=lambda d: d.confidence, default=None)
        if count > rule.max:
            st.under_since = None
            st.peak = max(st.peak, count) if st.opened else count
            data["peak"] = st.peak
            if not st.opened:
                st.opened = True
                return [(self._finding(rule, "occupancy", key, "open", float(count), data), best)]
            if changed:
                return [(self._finding(rule, "occupancy", key, "update", float(count), data), None)]
            return []
        if st.opened:
            st.under_since = t if st.under_since is None else st.under_since
            if t - st.under_since >= rule.hold_s:
                st.opened, st.under_since = False, None
                data["peak"] = st.peak
                return [(self._finding(rule, "occupancy", key, "close", float(st.peak), data), None)]
        return []

    def _line(
        self, i: int, rule: RuleSpec, picked: list[tuple[Detection, Point]], lost: Sequence[int], t: float
    ) -> list[tuple[Finding, Detection | None]]:
        assert rule.line is not None
        out: list[tuple[Finding, Detection | None]] = []
        for d, p in picked:
            side = _side(rule.line, p)
            if abs(side) < HYSTERESIS:
                continue  # on the line: wait until it is clearly on one side
            assert d.track_id is not None  # picked holds tracked detections only
            key = (i, d.track_id)
            previous = self._sides.get(key)
            self._sides[key] = (side, p)
            if previous is None or (previous[0] > 0) == (side > 0):
                continue
            if not _crosses_segment(rule.line, previous[1], p):
                continue  # went round the end of the line
            direction = "in" if side > 0 else "out"
            self.counts[(rule.label, direction, d.label)] += 1
            if self.on_cross is not None:
                self.on_cross(rule.label, direction, d.label)
            if rule.direction not in ("both", direction):
                continue
            self._crossings += 1
            data = {
                "rule": rule.label,
                "line": [list(rule.line[0]), list(rule.line[1])],
                "direction": direction,
                "label": d.label,
                "track_id": d.track_id,
                "confidence": round(d.confidence, 4),
                "counts": self.line_counts().get(rule.label, {}),
            }
            key_s = f"line_crossing:{rule.label}:{d.track_id}:{self._crossings}"
            out.append((self._finding(rule, "line_crossing", key_s, "open", d.confidence, data), d))
            out.append((self._finding(rule, "line_crossing", key_s, "close", d.confidence, data), None))
        for track_id in lost:
            self._sides.pop((i, track_id), None)
        return out

    def line_counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """{line: {direction: {class: crossings}}} since the camera started."""
        out: dict[str, dict[str, dict[str, int]]] = {}
        for (line, direction, label), n in sorted(self.counts.items()):
            out.setdefault(line, {}).setdefault(direction, {})[label] = n
        return out

    def finish(self) -> list[Finding]:
        """Close what is open (the camera is stopping)."""
        out: list[Finding] = []
        for (i, track_id), st in self._loiter.items():
            if st.opened:
                rule = self.rules[i]
                out.append(
                    self._finding(
                        rule,
                        "loitering",
                        f"loitering:{rule.label}:{track_id}",
                        "close",
                        None,
                        {"reason": "stopped"},
                    )
                )
        for i, occ in self._occupancy.items():
            if occ.opened:
                rule = self.rules[i]
                out.append(
                    self._finding(
                        rule,
                        "occupancy",
                        f"occupancy:{rule.label}",
                        "close",
                        None,
                        {"reason": "stopped", "peak": occ.peak},
                    )
                )
        self._loiter.clear()
        self._occupancy.clear()
        self._sides.clear()
        return out


def parse_rules(raw: object, zones: Sequence[Zone]) -> tuple[RuleSpec, ...]:
    """Validate `rules`; a zone a rule names must be one of the detector's zones. ValueError names it."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValueError("rules: expected a list")
    names = {z.name for z in zones}
    rules = []
    for i, item in enumerate(raw):
        try:
            rule = RuleSpec.model_validate(item) if not isinstance(item, RuleSpec) else item
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ValueError(f"rules[{i}]{'.' + where if where else ''}: {err['msg']}") from None
        if rule.zone is not None and rule.zone not in names:
            raise ValueError(f"rules[{i}].zone: no zone named {rule.zone!r} (zones: {sorted(names)})")
        rules.append(rule)
    labels = [(r.type, r.label) for r in rules]
    if len(set(labels)) != len(labels):
        raise ValueError("rules: two rules of one type share a name; give them distinct names")
    return tuple(rules)
