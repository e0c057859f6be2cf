"""ActivityGate: is anything moving on this camera? Cheapest signal first, confirmed in pixels.

The source asks the gate, per demuxed packet, whether it must decode; the gate learns from two signals:

- Packet sizes (free: demux gives them). With quality-based VBR on a clean picture a still P-frame is
  ~100 B and the first moving one 66-71x larger; with fixed-rate encoding the jump is 1.3-1.6x and with
  sensor noise 1.0x (TESTING.md). So the gate learns each camera's calm P-frame and keyframe sizes and
  calls the hint *informative* only when calm P-frames are tiny next to keyframes. A P-frame over
  `HINT_RATIO` x the calm baseline (and `min_hint_bytes`) asks for a *probe*: decode from the last
  keyframe and confirm in pixels.
- Pixel motion energy on a small grey thumbnail (`thumbnail()`: 96 px wide, area-averaged, so sensor
  noise averages out): the largest per-cell mean absolute difference against a thumbnail about a second
  older. Calm cameras are checked on keyframes: every keyframe, or every `informative_check_s` when the
  packet hint is informative (it then speaks first). The threshold follows the camera's own calm energy
  (running mean + `K_SIGMA` sd, at least `ENERGY_FLOOR` grey levels), like the VAD's normaliser.

States: `calm` (decode keyframes as due), `probing` (decode every frame for up to `PROBE_S`, confirm or
return to calm), `active` (decode every frame; back to calm after `hold_s` without motion).
Everything takes a monotonic `now` from the caller, so tests drive it with a fake clock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np

THUMB_WIDTH = 96
GRID = (6, 8)  # rows, columns of cells the energy is measured in
ENERGY_FLOOR = 2.5  # grey levels: below this, no cell is "moving" whatever the baseline says
K_SIGMA = 5.0
COMPARE_AFTER_S = 0.9  # compare against a thumbnail at least this much older (keyframes: the previous one)
HINT_RATIO = 4.0
INFORMATIVE_RATIO = 0.08  # calm P-frame / keyframe size below this: packet sizes reveal motion
MIN_SAMPLES = 20  # packets before the size baselines are trusted
PROBE_S = 1.5
LONG_GOP_S = 4.0


class GateState(StrEnum):
    CALM = "calm"
    PROBING = "probing"
    ACTIVE = "active"


def thumbnail(gray: np.ndarray) -> np.ndarray:
    """Area-averaged float32 thumbnail of a grey image (the Y plane): noise averages out, motion stays."""
    h, w = gray.shape[:2]
    size = (THUMB_WIDTH, max(GRID[0], round(h * THUMB_WIDTH / w)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA).astype(np.float32)


def motion_energy(previous: np.ndarray, current: np.ndarray) -> float:
    """Largest per-cell mean absolute difference: a person in one corner counts as much as a crowd."""
    diff = cv2.absdiff(previous, current)
    rows, cols = GRID
    cells = cv2.resize(diff, (cols, rows), interpolation=cv2.INTER_AREA)
    return float(cells.max())


class RunningStat:
    """Exponentially weighted mean and variance (alpha per sample)."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.n = 0
        self.mean = 0.0
        self.var = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        if self.n == 1:
            self.mean = x
            return
        a = max(self.alpha, 1.0 / self.n)
        delta = x - self.mean
        self.mean += a * delta
        self.var = (1 - a) * (self.var + a * delta * delta)

    @property
    def sd(self) -> float:
        return math.sqrt(self.var)


@dataclass(slots=True)
class GateStats:
    opens: int = 0
    probes: int = 0
    probes_confirmed: int = 0
    checks: int = 0  # pixel comparisons made


class ActivityGate:
    def __init__(self, hold_s: float = 5.0, min_hint_bytes: int = 400, informative_check_s: float = 30.0):
        self.hold_s = hold_s
        self.min_hint_bytes = min_hint_bytes
        self.informative_check_s = informative_check_s
        self.state = GateState.CALM
        self.stats = GateStats()
        self.energy = 0.0  # the last measured motion energy
        self._p_size = RunningStat(0.02)  # log bytes of calm non-key packets
        self._key_size = RunningStat(0.1)  # log bytes of keyframes
        self._calm_energy = RunningStat(0.05)
        self._history: deque[tuple[float, np.ndarray]] = deque()
        self._reference: np.ndarray | None = None  # probe: the thumbnail before the hint
        self._until = 0.0  # probing: give up at; active: close at
        self._last_check = float("-inf")
        self._last_key_at: float | None = None
        self.gop_s: float | None = None
        self.all_key = False  # every packet a keyframe so far (MJPEG and friends)
        self._packets = 0
        self._keys = 0

    # -- packets --

    @property
    def informative(self) -> bool:
        """Do calm P-frame sizes say anything? Only when they are tiny next to keyframes."""
        if self._p_size.n < MIN_SAMPLES or self._key_size.n < 2:
            return False
        return math.exp(self._p_size.mean - self._key_size.mean) < INFORMATIVE_RATIO

    def observe_packet(self, size: int, key: bool, now: float) -> None:
        """Learn sizes and GOP length; a large P-frame while calm starts a probe."""
        self._packets += 1
        if key:
            self._keys += 1
            if self._last_key_at is not None:
                gap = now - self._last_key_at
                self.gop_s = gap if self.gop_s is None else 0.8 * self.gop_s + 0.2 * gap
            self._last_key_at = now
            self._key_size.add(math.log(max(size, 1)))
        self.all_key = self._keys == self._packets
        if key or self.state is not GateState.CALM:
            return
        if (
            self.informative
            and size >= self.min_hint_bytes
            and (math.log(size) - self._p_size.mean > math.log(HINT_RATIO))
        ):
            self._start_probe(now)
            return
        self._p_size.add(math.log(max(size, 1)))

    def keyframe_due(self, now: float) -> bool:
        """Calm: should this keyframe be decoded and compared? (MJPEG: at most 2 a second.)"""
        if self.all_key:
            return now - self._last_check >= 0.5
        if self.informative:
            return now - self._last_check >= self.informative_check_s
        return True

    @property
    def long_gop(self) -> bool:
        """Keyframes too rare to wait for and packet sizes mute: the source then decodes every frame."""
        return (self.gop_s or 0.0) > LONG_GOP_S and not self.informative and not self.all_key

    # -- pixels --

    def observe_frame(self, thumb: np.ndarray, now: float) -> None:
        """A decoded frame's thumbnail: compare, then move the state machine."""
        self._last_check = now
        older = self._older_than(now - COMPARE_AFTER_S)
        reference = self._reference if self.state is GateState.PROBING else older
        self._remember(thumb, now)
        if reference is None or reference.shape != thumb.shape:
            return
        self.stats.checks += 1
        self.energy = motion_energy(reference, thumb)
        moving = self.energy > self.threshold
        if self.state is GateState.ACTIVE:
            if moving:
                self._until = now + self.hold_s
            elif now >= self._until:
                self.state = GateState.CALM
        elif moving:
            if self.state is GateState.PROBING:
                self.stats.probes_confirmed += 1
            self._open(now)
        elif self.state is GateState.PROBING:
            if now >= self._until:
                self.state = GateState.CALM
        else:
            self._calm_energy.add(self.energy)

    def tick(self, now: float) -> None:
        """Time passes without a decoded frame (e.g. a probe whose frames never came)."""
        if self.state is GateState.PROBING and now >= self._until + PROBE_S:
            self.state = GateState.CALM

    @property
    def threshold(self) -> float:
        if self._calm_energy.n < 3:
            return ENERGY_FLOOR * 2  # not learned yet: a little stricter than the floor
        return max(ENERGY_FLOOR, self._calm_energy.mean + K_SIGMA * self._calm_energy.sd)

    @property
    def decoding_all(self) -> bool:
        return self.state is not GateState.CALM

    def reset(self) -> None:
        """A new connection: thumbnails of the old one are no reference (sizes and energies still are)."""
        self._history.clear()
        self._reference = None
        self._last_key_at = None
        if self.state is GateState.PROBING:
            self.state = GateState.CALM

    def _start_probe(self, now: float) -> None:
        self.stats.probes += 1
        self.state = GateState.PROBING
        self._until = now + PROBE_S
        self._reference = self._history[-1][1] if self._history else None

    def _open(self, now: float) -> None:
        self.stats.opens += 1
        self.state = GateState.ACTIVE
        self._until = now + self.hold_s
        self._reference = None

    def _older_than(self, at: float) -> np.ndarray | None:
        found = None
        for t, thumb in self._history:
            if t > at:
                break
            found = thumb
        return found

    def _remember(self, thumb: np.ndarray, now: float) -> None:
        self._history.append((now, thumb))
        # keep one thumbnail older than the comparison distance, plus the ones after it
        while len(self._history) > 2 and self._history[1][0] <= now - COMPARE_AFTER_S:
            self._history.popleft()
