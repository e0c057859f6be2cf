"""ByteTrack-style multi-object tracking: links one camera's detections into tracks across frames.

Why not a library: supervision dropped `sv.ByteTrack` (0.27+; we run 0.31) in favour of Roboflow's
`trackers` package, whose wheel hard-requires `opencv-python` (the GUI build): installed next to our
`opencv-python-headless` both write the same `cv2/` folder and the GUI one needs libGL, which a headless
server lacks. norfair pins numpy<2. So this is the ByteTrack association (Zhang et al. 2022) in ~150
lines: high-confidence detections are matched first, low-confidence ones only keep existing tracks
alive (occlusion, blur), matching is Hungarian on IoU against each track's constant-velocity
prediction, class-aware. Time is the frame's capture time, so gaps in the analysis rate do not matter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from app.analyzers.yolo import iou_matrix


@dataclass
class Track:
    key: int  # internal; `id` is given only once the track is confirmed, so public ids stay dense
    box: np.ndarray  # xyxy at last_seen
    class_id: int
    score: float
    first_seen: float
    last_seen: float
    hits: int = 1
    id: int | None = None
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))  # box units per second

    def predict(self, t: float) -> np.ndarray:
        return self.box + self.velocity * max(0.0, t - self.last_seen)

    def hit(self, box: np.ndarray, score: float, t: float) -> None:
        dt = t - self.last_seen
        if dt > 0:
            measured = (box - self.box) / dt
            # Smoothed so one jittery box does not fling the prediction; the first measurement is taken
            # whole, so a fast object is predicted well from its second frame on.
            self.velocity = measured if self.hits == 1 else 0.5 * self.velocity + 0.5 * measured
        self.box, self.score, self.last_seen = box, score, t
        self.hits += 1


@dataclass(frozen=True, slots=True)
class TrackUpdate:
    """One update's outcome: per input detection its confirmed track id (None when it has none)."""

    track_ids: tuple[int | None, ...]
    lost: tuple[Track, ...]  # confirmed tracks removed in this update (gone longer than lost_after_s)


class ByteTracker:
    def __init__(
        self,
        *,
        high_threshold: float = 0.5,
        match_iou: float = 0.2,  # ByteTrack's match_thresh 0.8 (IoU distance)
        low_match_iou: float = 0.5,
        lost_after_s: float = 2.0,
        min_hits: int = 2,
    ) -> None:
        self.high_threshold = high_threshold
        self.match_iou = match_iou
        self.low_match_iou = low_match_iou
        self.lost_after_s = lost_after_s
        self.min_hits = max(1, min_hits)
        self.tracks: list[Track] = []
        self._next_key = 1
        self._next_id = 1
        self._last_t = float("-inf")

    def update(self, boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, t: float) -> TrackUpdate:
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        scores = np.asarray(scores, np.float32).reshape(-1)
        class_ids = np.asarray(class_ids, np.int64).reshape(-1)
        owner: list[Track | None] = [None] * len(boxes)
        high = np.flatnonzero(scores >= self.high_threshold)
        low = np.flatnonzero(scores < self.high_threshold)

        # Stage 1: every track against confident detections.
        unmatched = self._associate(self.tracks, high, boxes, class_ids, self.match_iou, owner, t)
        # Stage 2: tracks seen last time against weak detections (ByteTrack's key idea).
        recent = [tr for tr in unmatched if tr.last_seen >= self._last_t]
        self._associate(recent, low, boxes, class_ids, self.low_match_iou, owner, t)

        for i, tr in enumerate(owner):
            if tr is not None:
                tr.hit(boxes[i], float(scores[i]), t)
                if tr.id is None and tr.hits >= self.min_hits:
                    tr.id, self._next_id = self._next_id, self._next_id + 1
        for j in high:
            if owner[j] is None:
                owner[j] = self._start(boxes[j], float(scores[j]), int(class_ids[j]), t)

        matched = {id(tr) for tr in owner if tr is not None}
        kept: list[Track] = []
        lost: list[Track] = []
        for tr in self.tracks:
            if id(tr) in matched:
                kept.append(tr)
            elif tr.id is None:
                continue  # a tentative track that missed a frame was noise
            elif t - tr.last_seen > self.lost_after_s:
                lost.append(tr)
            else:
                kept.append(tr)
        self.tracks = kept
        self._last_t = t
        return TrackUpdate(tuple(tr.id if tr else None for tr in owner), tuple(lost))

    def _associate(
        self,
        tracks: list[Track],
        candidates: np.ndarray,
        boxes: np.ndarray,
        class_ids: np.ndarray,
        min_iou: float,
        owner: list[Track | None],
        t: float,
    ) -> list[Track]:
        """Hungarian matching on IoU (same class only); returns the tracks left unmatched."""
        if not tracks or not len(candidates):
            return list(tracks)
        # The better of the prediction and the last box: frame times are decode wall-clock times, so a
        # stall followed by a catch-up burst can make the velocity (and so the prediction) overshoot.
        predicted = np.stack([tr.predict(t) for tr in tracks])
        last = np.stack([tr.box for tr in tracks])
        overlap = np.maximum(iou_matrix(predicted, boxes[candidates]), iou_matrix(last, boxes[candidates]))
        same_class = np.array([tr.class_id for tr in tracks])[:, None] == class_ids[candidates][None, :]
        overlap = np.where(same_class, overlap, 0.0)
        rows, cols = linear_sum_assignment(-overlap)
        taken: set[int] = set()
        for r, c in zip(rows, cols, strict=True):
            if overlap[r, c] >= min_iou:
                owner[int(candidates[c])] = tracks[r]
                taken.add(r)
        return [tr for r, tr in enumerate(tracks) if r not in taken]

    def _start(self, box: np.ndarray, score: float, class_id: int, t: float) -> Track:
        tr = Track(key=self._next_key, box=box, class_id=class_id, score=score, first_seen=t, last_seen=t)
        self._next_key += 1
        if self.min_hits <= 1:
            tr.id, self._next_id = self._next_id, self._next_id + 1
        self.tracks.append(tr)
        return tr

    def confirmed(self) -> list[Track]:
        return [tr for tr in self.tracks if tr.id is not None]
