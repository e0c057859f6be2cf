"""Polygon zones and masks in normalised (0..1) frame coordinates, so they survive resolution changes.

A box belongs to a zone (or is masked) when its bottom-centre point is inside: that is where an
object touches the ground, the convention NVR users draw their zones for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Polygon:
    points: tuple[Point, ...]

    @classmethod
    def parse(cls, raw: object, field: str) -> Polygon:
        """Validate a [[x, y], ...] list; ValueError names the field on any problem."""
        if not isinstance(raw, Sequence) or isinstance(raw, str) or len(raw) < 3:
            raise ValueError(f"{field}: a polygon needs at least 3 [x, y] points")
        points: list[Point] = []
        for i, p in enumerate(raw):
            if (
                not isinstance(p, Sequence)
                or isinstance(p, str)
                or len(p) != 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in p)
            ):
                raise ValueError(f"{field}[{i}]: expected [x, y] numbers, got {p!r}")
            x, y = float(p[0]), float(p[1])
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"{field}[{i}]: coordinates are normalised, 0..1; got [{x}, {y}]")
            points.append((x, y))
        poly = cls(tuple(points))
        if poly.area() <= 0:
            raise ValueError(f"{field}: the polygon has no area")
        return poly

    def area(self) -> float:
        xs = np.array([p[0] for p in self.points])
        ys = np.array([p[1] for p in self.points])
        return float(abs(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))) / 2)

    def contains(self, x: float, y: float) -> bool:
        """Even-odd ray casting; a point exactly on an edge counts as inside."""
        pts = self.points
        inside = False
        j = len(pts) - 1
        for i in range(len(pts)):
            (xi, yi), (xj, yj) = pts[i], pts[j]
            if _on_segment(x, y, xi, yi, xj, yj):
                return True
            if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
                inside = not inside
            j = i
        return inside

    def to_json(self) -> list[list[float]]:
        return [[x, y] for x, y in self.points]


def _on_segment(x: float, y: float, x1: float, y1: float, x2: float, y2: float) -> bool:
    cross = (x - x1) * (y2 - y1) - (y - y1) * (x2 - x1)
    if abs(cross) > 1e-12:
        return False
    return min(x1, x2) - 1e-12 <= x <= max(x1, x2) + 1e-12 and min(y1, y2) - 1e-12 <= y <= max(y1, y2) + 1e-12


@dataclass(frozen=True, slots=True)
class Zone:
    name: str
    polygon: Polygon


def parse_zones(raw: object) -> tuple[Zone, ...]:
    """`zones`: [{"name": str, "polygon": [[x, y], ...]}, ...] with unique names."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValueError("zones: expected a list of {name, polygon}")
    zones: list[Zone] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) - {"name", "polygon"}:
            raise ValueError(f"zones[{i}]: expected {{name, polygon}}")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"zones[{i}].name: a non-empty string is required")
        if any(z.name == name for z in zones):
            raise ValueError(f"zones[{i}].name: duplicate zone name {name!r}")
        zones.append(Zone(name, Polygon.parse(item.get("polygon"), f"zones[{i}].polygon")))
    return tuple(zones)


def parse_masks(raw: object) -> tuple[Polygon, ...]:
    """`masks`: a list of polygons ([[x, y], ...]) or of {"polygon": [[x, y], ...]} objects."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValueError("masks: expected a list of polygons")
    masks: list[Polygon] = []
    for i, item in enumerate(raw):
        if isinstance(item, dict):
            if set(item) - {"name", "polygon"}:
                raise ValueError(f"masks[{i}]: expected a polygon or {{polygon}}")
            item = item.get("polygon")
        masks.append(Polygon.parse(item, f"masks[{i}]"))
    return tuple(masks)


def anchor(box: Sequence[float], width: float, height: float) -> Point:
    """The bottom-centre of an xyxy pixel box, normalised to the frame."""
    return ((box[0] + box[2]) / 2 / width, box[3] / height)


def zones_of(point: Point, zones: Sequence[Zone]) -> tuple[str, ...]:
    return tuple(z.name for z in zones if z.polygon.contains(*point))


def masked(point: Point, masks: Sequence[Polygon]) -> bool:
    return any(m.contains(*point) for m in masks)
