"""The demo street camera with the learned VAD: cars on the road alert only while the camera learns; the
car on the pavement and the person crossing the lawn still alert afterwards, naming "where"."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import cv2
import pytest

from app.analyzers.registry import AnalyzerContext
from app.analyzers.vad import create
from app.config import Settings
from app.demo import FPS, LAWN_CROSSING, PAVEMENT_CAR, SECONDS, STREET_LEARN_S, moving_scene
from app.inference.pool import ResourcePool
from app.stream.frame import Frame

ANALYSIS_FPS = 5
T0 = 1_795_000_000.0  # a fixed clock: every frame in one hour bucket


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[ResourcePool]:
    async with ResourcePool(tmp_path / "models") as pool:
        yield pool


def frames() -> list[tuple[float, object]]:
    """One loop of the street video as the pipeline analyses it: 5 FPS, 320 px wide."""
    step = FPS // ANALYSIS_FPS
    return [(i / FPS, cv2.resize(f, (320, 180), interpolation=cv2.INTER_AREA))
            for i, f in enumerate(moving_scene()) if i % step == 0]  # fmt: skip


def during(t: float, window: tuple[float, float], slack: float = 1.0) -> bool:
    return window[0] <= t < window[0] + window[1] + slack


async def test_street_after_learning(pool: ResourcePool, settings: Settings) -> None:
    analyzer = create({"learn_s": STREET_LEARN_S}, AnalyzerContext(1, pool, settings))
    loop = frames()
    opened: list[tuple[int, float, set[str]]] = []
    seq = 0
    for round_ in range(2):
        for t, image in loop:
            seq += 1
            obs = await analyzer.process(Frame(1, seq, T0 + round_ * SECONDS + t, image, 640, 360), {})
            for f in obs.findings:
                if f.phase == "open":
                    opened.append((round_, t, {r["component"] for r in f.data["regions"]}))
    analyzer.finish()
    assert any(r == 0 and t < 60 for r, t, _ in opened), "no event in the first minute"
    learned = [(r, t, c) for r, t, c in opened if r > 0 or t > STREET_LEARN_S + 10]
    for window in (PAVEMENT_CAR, LAWN_CROSSING):
        for round_ in (0, 1):
            hits = [c for r, t, c in learned if r == round_ and during(t, window)]
            assert hits and any("where" in c for c in hits), (window, round_, learned)
    stray = [(r, t) for r, t, _ in learned if not (during(t, PAVEMENT_CAR) or during(t, LAWN_CROSSING))]
    assert stray == [], stray
