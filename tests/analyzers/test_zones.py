"""Zones and masks: normalised polygons, bottom-centre anchor, validation naming the field."""

from __future__ import annotations

import pytest

from app.analyzers.zones import Polygon, anchor, masked, parse_masks, parse_zones, zones_of

SQUARE = [[0.0, 0.5], [0.5, 0.5], [0.5, 1.0], [0.0, 1.0]]  # bottom-left quarter


class TestPolygon:
    def test_contains_inside_outside_and_edge(self) -> None:
        poly = Polygon.parse(SQUARE, "p")
        assert poly.contains(0.25, 0.75)
        assert not poly.contains(0.75, 0.75)
        assert not poly.contains(0.25, 0.25)
        assert poly.contains(0.5, 0.75)  # on the right edge
        assert poly.contains(0.0, 1.0)  # a corner

    def test_concave_polygon(self) -> None:
        # A "U": the notch between the arms is outside.
        u = Polygon.parse([[0, 0], [0.3, 0], [0.3, 0.7], [0.7, 0.7], [0.7, 0], [1, 0], [1, 1], [0, 1]], "u")
        assert u.contains(0.1, 0.5)
        assert not u.contains(0.5, 0.5)
        assert u.contains(0.5, 0.9)

    @pytest.mark.parametrize(
        ("raw", "message"),
        [
            ([[0, 0], [1, 1]], "at least 3"),
            ([[0, 0], [1, 0], [2, 1]], r"p\[2\]: coordinates are normalised"),
            ([[0, 0], [1, 0], "x"], r"p\[2\]: expected \[x, y\]"),
            ([[0, 0], [0.5, 0.5], [1, 1]], "no area"),
            ([[0, 0], [1, 0], [True, 1]], r"p\[2\]"),
        ],
    )
    def test_bad_polygons_name_the_field(self, raw: object, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            Polygon.parse(raw, "p")


class TestZones:
    def test_zones_of_bottom_centre(self) -> None:
        zones = parse_zones(
            [
                {"name": "yard", "polygon": SQUARE},
                {"name": "all", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]},
            ]
        )
        # A 640x360 box whose top is in the upper half but whose feet are in the yard.
        point = anchor((100, 10, 200, 300), 640, 360)
        assert point == pytest.approx((150 / 640, 300 / 360))
        assert zones_of(point, zones) == ("yard", "all")
        assert zones_of(anchor((400, 10, 600, 300), 640, 360), zones) == ("all",)

    @pytest.mark.parametrize(
        ("raw", "message"),
        [
            ({"name": "x"}, "zones: expected a list"),
            ([{"polygon": SQUARE}], r"zones\[0\].name"),
            (
                [{"name": "a", "polygon": SQUARE}, {"name": "a", "polygon": SQUARE}],
                r"zones\[1\].name: duplicate",
            ),
            ([{"name": "a", "polygon": [[0, 0]]}], r"zones\[0\].polygon"),
            ([{"name": "a", "polygon": SQUARE, "color": "red"}], r"zones\[0\]"),
        ],
    )
    def test_bad_zones(self, raw: object, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            parse_zones(raw)

    def test_masks_accept_bare_polygons_and_objects(self) -> None:
        masks = parse_masks([SQUARE, {"polygon": [[0.5, 0], [1, 0], [1, 0.5]]}])
        assert masked((0.1, 0.9), masks)
        assert masked((0.9, 0.1), masks)
        assert not masked((0.9, 0.9), masks)
        with pytest.raises(ValueError, match=r"masks\[0\]"):
            parse_masks([[[0, 0], [3, 0], [0, 1]]])
