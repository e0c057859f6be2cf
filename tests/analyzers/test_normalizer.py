"""ScoreNormalizer: warm-up, z-scores against the camera's own statistics, the std floor, drift."""

from __future__ import annotations

import numpy as np
import pytest

from app.analyzers.normalizer import ScoreNormalizer


class TestScoreNormalizer:
    def test_no_z_during_warmup_then_exact_statistics(self) -> None:
        n = ScoreNormalizer(warmup=5, min_std=0.01)
        values = [1.0, 2.0, 3.0, 4.0, 5.0]
        assert [n.observe(v) for v in values] == [None] * 5
        assert n.ready
        assert n.mean == pytest.approx(3.0)
        assert n.std == pytest.approx(np.std(values))
        assert n.z(3.0 + 2 * np.std(values)) == pytest.approx(2.0)

    def test_one_threshold_fits_quiet_and_busy_scenes(self) -> None:
        rng = np.random.default_rng(1)
        quiet, busy = ScoreNormalizer(warmup=50), ScoreNormalizer(warmup=50)
        for _ in range(50):
            quiet.update(abs(rng.normal(0.2, 0.05)))
            busy.update(abs(rng.normal(8.0, 2.0)))
        # a busy scene's ordinary score would be an anomaly in the quiet one, and is not in its own
        assert quiet.z(8.0) is not None and quiet.z(8.0) > 10  # type: ignore[operator]
        assert abs(busy.z(8.0) or 0) < 1
        assert (busy.z(20.0) or 0) > 3

    def test_std_floor_keeps_a_still_scene_finite(self) -> None:
        n = ScoreNormalizer(warmup=3, min_std=0.5)
        for _ in range(3):
            n.update(0.0)
        assert n.std == 0.5 and n.z(1.0) == pytest.approx(2.0)

    def test_follows_slow_drift_after_warmup(self) -> None:
        n = ScoreNormalizer(warmup=10, alpha=0.05, min_std=0.01)
        for _ in range(10):
            n.update(1.0)
        for _ in range(300):
            n.update(5.0)  # the scene got brighter for good
        assert n.mean == pytest.approx(5.0, abs=0.01)

    def test_relearn_warms_up_again_on_the_new_scene(self) -> None:
        n = ScoreNormalizer(warmup=4, min_std=0.01)
        for v in (1.0, 1.1, 0.9, 1.0):
            n.update(v)
        assert (n.z(6.0) or 0) > 50  # the lights came on: far off the learned scene
        n.relearn()
        assert not n.ready and n.z(6.0) is None
        for v in (6.0, 6.1, 5.9, 6.0):
            n.update(v)
        assert n.mean == pytest.approx(6.0) and abs(n.z(6.0) or 0) < 1  # the new scene is the normal one

    def test_non_finite_scores_are_ignored(self) -> None:
        n = ScoreNormalizer(warmup=2)
        n.update(float("nan"))
        assert n.count == 0

    def test_bad_parameters(self) -> None:
        with pytest.raises(ValueError):
            ScoreNormalizer(warmup=1)
        with pytest.raises(ValueError):
            ScoreNormalizer(alpha=1.5)
