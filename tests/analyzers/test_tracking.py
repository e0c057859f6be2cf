"""ByteTracker: stable ids across frames, confirmation, low-confidence rescue, loss after the grace."""

from __future__ import annotations

import numpy as np

from app.analyzers.tracking import ByteTracker
from app.analyzers.yolo import iou_matrix


def step(tracker: ByteTracker, t: float, *dets: tuple[float, float, float, float, float, int]):  # type: ignore[no-untyped-def]
    arr = np.array([d[:4] for d in dets], np.float32).reshape(-1, 4)
    scores = np.array([d[4] for d in dets], np.float32)
    classes = np.array([d[5] for d in dets], np.int64)
    return tracker.update(arr, scores, classes, t)


def box(x: float, y: float = 0.0, size: float = 20.0, score: float = 0.9, cls: int = 0):  # type: ignore[no-untyped-def]
    return (x, y, x + size, y + size, score, cls)


class TestByteTracker:
    def test_iou_matrix(self) -> None:
        m = iou_matrix(
            np.array([[0, 0, 10, 10]], np.float32),
            np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32),
        )
        np.testing.assert_allclose(m, [[1.0, 1 / 3, 0.0]], rtol=1e-6)

    def test_moving_object_keeps_its_id_and_is_confirmed_on_second_hit(self) -> None:
        tracker = ByteTracker(min_hits=2)
        first = step(tracker, 0.0, box(0))
        assert first.track_ids == (None,)  # tentative
        ids = [step(tracker, t, box(8 * t * 5)).track_ids[0] for t in (0.2, 0.4, 0.6, 0.8, 1.0)]
        assert ids == [1, 1, 1, 1, 1]

    def test_prediction_bridges_a_missed_frame(self) -> None:
        # 8 px per frame; the object is missed once, so the next box is 16 px from the last one seen:
        # IoU 0.11 with it (no match without prediction), a near-perfect match with the prediction.
        tracker = ByteTracker(min_hits=1)
        ids = [step(tracker, i * 0.2, box(8 * i)).track_ids[0] for i in range(6)]
        step(tracker, 6 * 0.2)
        after = step(tracker, 7 * 0.2, box(8 * 7))
        assert set(ids) == {1}
        assert after.track_ids == (1,)

    def test_two_objects_two_ids_and_classes_never_swap(self) -> None:
        tracker = ByteTracker(min_hits=1)
        a = step(tracker, 0.0, box(0, cls=0), box(0, cls=1))
        b = step(tracker, 0.2, box(2, cls=1), box(2, cls=0))
        assert sorted(a.track_ids) == [1, 2]
        assert b.track_ids == (a.track_ids[1], a.track_ids[0])

    def test_low_confidence_detection_keeps_a_track_alive(self) -> None:
        tracker = ByteTracker(high_threshold=0.5, min_hits=1, lost_after_s=0.3)
        step(tracker, 0.0, box(0))
        weak = step(tracker, 0.2, box(1, score=0.2))
        assert weak.track_ids == (1,)
        later = step(tracker, 0.4, box(2, score=0.2))
        assert later.track_ids == (1,) and later.lost == ()

    def test_low_confidence_detection_never_starts_a_track(self) -> None:
        tracker = ByteTracker(high_threshold=0.5, min_hits=1)
        assert step(tracker, 0.0, box(0, score=0.3)).track_ids == (None,)
        assert tracker.tracks == []

    def test_lost_after_grace_then_new_id(self) -> None:
        tracker = ByteTracker(min_hits=1, lost_after_s=1.0)
        step(tracker, 0.0, box(0))
        assert step(tracker, 0.5).lost == ()  # within grace
        gone = step(tracker, 1.5)
        assert [t.id for t in gone.lost] == [1]
        assert step(tracker, 1.7, box(0)).track_ids == (2,)

    def test_tentative_track_that_misses_a_frame_is_dropped_silently(self) -> None:
        tracker = ByteTracker(min_hits=3)
        step(tracker, 0.0, box(0))
        result = step(tracker, 0.2)
        assert result.lost == () and tracker.tracks == []
        ids = [step(tracker, 0.4 + i * 0.2, box(0)).track_ids[0] for i in range(3)]
        assert ids == [None, None, 1]  # ids stay dense: the dropped flicker never took one
