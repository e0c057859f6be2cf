"""ActivityGate with a fake clock: packet-size hints, pixel confirmation, noise, hold, long GOPs."""

from __future__ import annotations

import numpy as np

from app.stream.activity import ActivityGate, GateState, motion_energy, thumbnail

FPS = 15


def scene(seed: int = 1, size: tuple[int, int] = (360, 640)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(40, 200, size, dtype=np.uint8)


def noisy(image: np.ndarray, sd: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(image + rng.normal(0, sd, image.shape), 0, 255).astype(np.uint8)


def with_person(image: np.ndarray, x: int) -> np.ndarray:
    out = image.copy()
    out[150:260, x : x + 40] = 250
    return out


def run_calm_vbr(gate: ActivityGate, seconds: float, t0: float = 0.0) -> float:
    """Calm VBR stream: 20 kB keyframes every 2 s, 100 B P-frames; keyframes decoded when due."""
    base = scene()
    t = t0
    for i in range(int(seconds * FPS)):
        t = t0 + i / FPS
        key = i % (2 * FPS) == 0
        gate.observe_packet(20_000 if key else 100, key, t)
        if key and gate.keyframe_due(t):
            gate.observe_frame(thumbnail(base), t)
    return t


class TestPacketHint:
    def test_vbr_still_scene_makes_the_hint_informative_and_skips_keyframes(self) -> None:
        gate = ActivityGate()
        run_calm_vbr(gate, 12)
        assert gate.informative
        assert gate.state is GateState.CALM
        assert gate.stats.checks <= 2, "with an informative hint, keyframes are checked every 30 s only"

    def test_a_large_p_frame_starts_a_probe_confirmed_in_pixels(self) -> None:
        gate = ActivityGate()
        t = run_calm_vbr(gate, 12)
        gate.observe_packet(7_000, False, t + 1 / FPS)  # the first moving frame: 70x the still size
        assert gate.state is GateState.PROBING
        gate.observe_frame(thumbnail(with_person(scene(), 100)), t + 2 / FPS)
        assert gate.state is GateState.ACTIVE
        assert gate.stats.probes_confirmed == 1

    def test_a_probe_without_motion_in_pixels_returns_to_calm(self) -> None:
        gate = ActivityGate()
        t = run_calm_vbr(gate, 12)
        gate.observe_packet(7_000, False, t + 0.1)
        for k in range(30):
            gate.observe_frame(thumbnail(scene()), t + 0.1 + k * 0.1)
        assert gate.state is GateState.CALM
        assert gate.stats.opens == 0

    def test_fixed_rate_streams_are_not_informative(self) -> None:
        gate = ActivityGate()
        for i in range(120):
            key = i % 30 == 0
            gate.observe_packet(30_000 if key else 8_000, key, i / FPS)
        assert not gate.informative
        assert gate.keyframe_due(120 / FPS)
        assert gate.gop_s is not None and abs(gate.gop_s - 2.0) < 0.01


class TestPixels:
    def test_sensor_noise_never_opens_the_gate(self) -> None:
        gate = ActivityGate()
        rng = np.random.default_rng(5)
        base = scene()
        for k in range(200):  # 400 s of keyframes 2 s apart
            gate.observe_frame(thumbnail(noisy(base, 6, rng)), k * 2.0)
        assert gate.stats.opens == 0
        assert gate.energy < 1.5

    def test_a_person_in_one_corner_opens_and_hold_closes(self) -> None:
        gate = ActivityGate(hold_s=5.0)
        base = scene()
        for k in range(5):
            gate.observe_frame(thumbnail(base), k * 2.0)
        gate.observe_frame(thumbnail(with_person(base, 20)), 10.0)
        assert gate.state is GateState.ACTIVE
        t = 10.0
        for k in range(1, 20):  # moving for 4 s at 5 checks a second
            t = 10.0 + k * 0.2
            gate.observe_frame(thumbnail(with_person(base, 20 + 15 * k)), t)
        assert gate.state is GateState.ACTIVE
        for k in range(1, 40):  # then still
            gate.observe_frame(thumbnail(base), t + k * 0.2)
        assert gate.state is GateState.CALM

    def test_energy_measures_the_largest_cell(self) -> None:
        base = thumbnail(scene())
        assert motion_energy(base, base) == 0.0
        assert motion_energy(base, thumbnail(with_person(scene(), 300))) > 10


def test_mjpeg_like_streams_are_checked_at_a_bounded_rate() -> None:
    gate = ActivityGate()
    for i in range(30):
        gate.observe_packet(15_000, True, i / 10)
    assert gate.all_key
    gate.observe_frame(thumbnail(scene()), 3.0)
    assert not gate.keyframe_due(3.1)
    assert gate.keyframe_due(3.6)
