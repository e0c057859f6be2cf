"""Zone rules on tracks: loitering, line crossing (counts, direction, hysteresis), occupancy."""

from __future__ import annotations

import pytest

from app.analyzers.base import Detection
from app.analyzers.zone_rules import ZoneRules, parse_rules
from app.analyzers.zones import parse_zones

ZONES = parse_zones([{"name": "yard", "polygon": [[0.0, 0.5], [0.5, 0.5], [0.5, 1.0], [0.0, 1.0]]}])
W, H = 1000, 1000


def det(track: int, x: float, y: float, label: str = "person", conf: float = 0.8) -> Detection:
    """A 40x80 px box whose bottom-centre is at (x, y) normalised."""
    return Detection(x * W - 20, y * H - 80, x * W + 20, y * H, conf, 0, label, track)


def rules(*raw: dict) -> ZoneRules:  # type: ignore[type-arg]
    return ZoneRules(parse_rules(list(raw), ZONES), ZONES, "medium", update_every_s=10.0)


def step(zr: ZoneRules, t: float, *ds: Detection, lost: tuple[int, ...] = ()) -> list:  # type: ignore[type-arg]
    anchors = [((d.x1 + d.x2) / 2 / W, d.y2 / H) for d in ds]
    return [f for f, _ in zr.step(ds, anchors, lost, t)]


def test_loitering_opens_once_after_the_dwell_and_closes_when_the_track_leaves() -> None:
    zr = rules({"type": "loitering", "zone": "yard", "seconds": 3, "classes": ["person"]})
    assert step(zr, 0.0, det(1, 0.2, 0.8), det(2, 0.2, 0.8, "car")) == []
    assert step(zr, 2.0, det(1, 0.25, 0.8)) == []
    assert step(zr, 2.5) == []  # missed for a frame (not lost): the stay goes on
    (opened,) = step(zr, 3.2, det(1, 0.3, 0.8))
    assert (opened.kind, opened.phase, opened.data["zone"], opened.data["track_id"]) == (
        "loitering",
        "open",
        "yard",
        1,
    )
    assert opened.data["dwell_s"] == 3.2
    assert step(zr, 5.0, det(1, 0.3, 0.8)) == []
    (closed,) = step(zr, 6.0, det(1, 0.7, 0.8))  # walked out
    assert (closed.phase, closed.data["reason"], closed.data["dwell_s"]) == ("close", "left_zone", 6.0)
    assert step(zr, 7.0, det(1, 0.2, 0.8)) == []  # back in: a new stay starts from zero


def test_line_crossing_counts_each_direction_once_with_hysteresis() -> None:
    # a vertical line down the middle, drawn top to bottom: moving right -> left is "in"
    zr = rules({"type": "line_crossing", "name": "gate", "line": [[0.5, 0.0], [0.5, 1.0]], "direction": "in"})
    assert step(zr, 0.0, det(1, 0.6, 0.5)) == []
    assert step(zr, 0.2, det(1, 0.505, 0.5)) == []  # on the line: not yet
    events = step(zr, 0.4, det(1, 0.4, 0.5))
    assert [(f.kind, f.phase) for f in events] == [("line_crossing", "open"), ("line_crossing", "close")]
    assert events[0].data["direction"] == "in" and events[0].data["counts"] == {"in": {"person": 1}}
    assert step(zr, 0.6, det(1, 0.497, 0.5), det(1, 0.503, 0.5)) == []  # jitter on the line: nothing
    assert step(zr, 0.8, det(1, 0.45, 0.5)) == []
    assert step(zr, 1.0, det(1, 0.6, 0.5)) == []  # "out" is counted but raises no event (direction: in)
    assert zr.line_counts() == {"gate": {"in": {"person": 1}, "out": {"person": 1}}}


def test_line_crossing_ignores_moves_around_the_end_of_the_line() -> None:
    zr = rules({"type": "line_crossing", "name": "short", "line": [[0.5, 0.0], [0.5, 0.3]]})
    step(zr, 0.0, det(1, 0.6, 0.8))
    assert step(zr, 0.5, det(1, 0.4, 0.8)) == []  # passed below the segment's end
    assert zr.line_counts() == {}


def test_occupancy_opens_over_the_limit_updates_and_closes_after_hold() -> None:
    zr = rules({"type": "occupancy", "zone": "yard", "max": 2, "hold_s": 1.0})
    assert step(zr, 0.0, det(1, 0.1, 0.8), det(2, 0.2, 0.8), det(3, 0.9, 0.8)) == []
    (opened,) = step(zr, 0.2, det(1, 0.1, 0.8), det(2, 0.2, 0.8), det(3, 0.3, 0.8))
    assert (opened.kind, opened.phase, opened.data["count"], opened.data["track_ids"]) == (
        "occupancy", "open", 3, [1, 2, 3])  # fmt: skip
    (update,) = step(zr, 0.4, *(det(i, 0.1 + i / 20, 0.8) for i in range(1, 5)))
    assert update.phase == "update" and update.data["count"] == 4
    assert step(zr, 0.6, det(1, 0.1, 0.8)) == []  # under the limit, held
    (closed,) = step(zr, 1.7, det(1, 0.1, 0.8))
    assert closed.phase == "close" and closed.data["peak"] == 4


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"type": "loitering", "zone": "nowhere"}, "no zone named 'nowhere'"),
        ({"type": "occupancy"}, "needs a zone"),
        ({"type": "line_crossing"}, "needs a line"),
        ({"type": "line_crossing", "line": [[0, 0], [2, 1]]}, "normalised"),
        ({"type": "dwell", "zone": "yard"}, "rules\\[0\\].type"),
    ],
)
def test_bad_rules_are_refused_naming_them(raw: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=message):
        parse_rules([raw], ZONES)
