"""Frame: one decoded picture travelling by reference through the pipeline; never copied, never mutated."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    camera_id: int
    seq: int  # decoder frame number since the source started (gaps = frames not converted)
    captured_at: float  # wall-clock epoch seconds when the frame was decoded
    image: np.ndarray  # BGR uint8, H x W x 3, at the working size (not necessarily the stream's size)
    source_width: int  # the stream's own size, for mapping boxes back
    source_height: int

    @property
    def id(self) -> str:
        return f"{self.camera_id}:{self.seq}"

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])
