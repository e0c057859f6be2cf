"""The VAD analyzer on the real built-in ONNX model: still scenes stay quiet, a burst is ONE episode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from pydantic import ValidationError

from app.analyzers.base import Finding
from app.analyzers.registry import AnalyzerContext, ChainError
from app.analyzers.vad import Preprocessor, VadAnalyzer, create, severity_for
from app.config import Settings
from app.inference.manifest import ModelSpec
from app.inference.pool import ResourcePool
from app.stream.frame import Frame

H, W = 180, 320
RNG = np.random.default_rng(3)
BACKGROUND = RNG.integers(40, 200, (H, W, 3), dtype=np.uint8)


def still(seq: int) -> Frame:
    noise = RNG.integers(-3, 4, (H, W, 3))  # sensor noise, well under the model's noise floor
    image = np.clip(BACKGROUND.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return Frame(1, seq, seq * 0.2, image, W, H)


def moving(seq: int) -> Frame:
    image = still(seq).image.copy()
    x = 20 + (seq % 10) * 25
    image[60:120, x : x + 40] = 255
    return Frame(1, seq, seq * 0.2, image, W, H)


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[ResourcePool]:
    async with ResourcePool(tmp_path / "models") as pool:
        yield pool


def vad(pool: ResourcePool, settings: Settings, **options: Any) -> VadAnalyzer:
    return create({"warmup_frames": 10, "hold_s": 1.0, **options}, AnalyzerContext(1, pool, settings))


async def feed(analyzer: VadAnalyzer, frames: list[Frame]) -> list[Finding]:
    findings: list[Finding] = []
    for f in frames:
        findings.extend((await analyzer.process(f, {})).findings)
    return findings


class TestBuiltinModel:
    async def test_still_frames_score_zero_and_motion_scores_high(self, pool: ResourcePool) -> None:
        prep = Preprocessor(pool.spec("vad-motion"))
        s0, s1, m = (prep.plane(f.image) for f in (still(0), still(1), moving(2)))
        quiet = await pool.infer("vad-motion", np.concatenate([s0, s1]))
        busy = await pool.infer("vad-motion", np.concatenate([s1, m]))
        assert float(quiet[0]) == 0.0
        assert float(busy[0]) > 1.0


class TestEpisodes:
    async def test_a_still_scene_raises_nothing(self, pool: ResourcePool, settings: Settings) -> None:
        analyzer = vad(pool, settings)
        assert await feed(analyzer, [still(i) for i in range(40)]) == []
        assert analyzer.finish() == ()

    async def test_a_burst_of_motion_is_one_episode(self, pool: ResourcePool, settings: Settings) -> None:
        analyzer = vad(pool, settings)
        frames = [still(i) for i in range(20)] + [moving(i) for i in range(20, 35)]
        frames += [still(i) for i in range(35, 60)]
        findings = await feed(analyzer, frames)
        phases = [f.phase for f in findings]
        assert phases[0] == "open" and phases[-1] == "close"
        assert phases.count("open") == 1 and phases.count("close") == 1
        assert len(findings) <= 4  # updates are sparing: severity rises only
        assert {f.kind for f in findings} == {"anomaly"} and {f.key for f in findings} == {"anomaly"}
        opened = findings[0]
        assert opened.score is not None and opened.score >= 3.0
        assert opened.data["model"] == "vad-motion" and opened.data["threshold"] == 3.0

    async def test_two_bursts_are_two_episodes(self, pool: ResourcePool, settings: Settings) -> None:
        analyzer = vad(pool, settings)
        frames = [still(i) for i in range(15)] + [moving(i) for i in range(15, 20)]
        frames += [still(i) for i in range(20, 35)] + [moving(i) for i in range(35, 40)]
        frames += [still(i) for i in range(40, 55)]
        phases = [f.phase for f in await feed(analyzer, frames)]
        assert phases.count("open") == 2 and phases.count("close") == 2

    async def test_finish_closes_an_open_episode_and_detaches(
        self, pool: ResourcePool, settings: Settings
    ) -> None:
        analyzer = vad(pool, settings)
        findings = await feed(analyzer, [still(i) for i in range(15)] + [moving(i) for i in range(15, 20)])
        assert findings[0].phase == "open" and "close" not in {f.phase for f in findings}
        closing = analyzer.finish()
        assert [f.phase for f in closing] == ["close"]
        assert pool.stats("vad-motion")[0]["cameras"] == []

    async def test_min_duration_filters_a_single_frame_blip(
        self, pool: ResourcePool, settings: Settings
    ) -> None:
        analyzer = vad(pool, settings, min_duration_s=1.0)
        frames = [still(i) for i in range(15)] + [moving(15)] + [still(i) for i in range(16, 30)]
        assert await feed(analyzer, frames) == []


def register_brightness(pool: ResourcePool, tmp_path: Path) -> None:
    """A "score" model: mean brightness of one grey frame (a permanent light change keeps it high)."""
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["img", "axes"], ["score"], keepdims=0)],
        "brightness",
        [helper.make_tensor_value_info("img", TensorProto.FLOAT, ["b", 1, 32, 32])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["b"])],
        initializer=[numpy_helper.from_array(np.array([1, 2, 3], np.int64), "axes")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    (tmp_path / "bright.onnx").write_bytes(model.SerializeToString())
    pool.register(ModelSpec.parse({"name": "bright", "kind": "score", "path": "bright.onnx",
                                   "normalization": {"channel_order": "gray"}}, tmp_path))  # fmt: skip


def flat(seq: int, level: int) -> Frame:
    """A uniform frame at `level` (+1 on odd frames: a little sensor flicker), 0.2 s apart."""
    return Frame(1, seq, seq * 0.2, np.full((H, W, 3), min(255, level + seq % 2), np.uint8), W, H)


class TestMaxDuration:
    async def test_a_permanent_change_is_one_event_then_the_new_scene_is_learned(
        self, pool: ResourcePool, settings: Settings, tmp_path: Path
    ) -> None:
        # given a brightness score: the lights go on at frame 15 and stay on
        register_brightness(pool, tmp_path)
        analyzer = vad(pool, settings, model="bright", min_std=0.01, max_duration_s=2.0)
        frames = [flat(i, 40) for i in range(15)] + [flat(i, 200) for i in range(15, 60)]
        findings = await feed(analyzer, frames)
        # one event, closed by the cap (not stuck open), and nothing more while the lights stay on
        assert [f.phase for f in findings] == ["open", "close"]
        opened, closed = findings
        assert opened.data["duration_s"] == 0 and closed.data["reason"] == "max_duration"
        assert closed.data["duration_s"] == pytest.approx(2.0)
        # a genuine burst against the new scene (a flash) opens a NEW event that closes the usual way
        frames = [flat(i, 255) for i in range(60, 63)] + [flat(i, 200) for i in range(63, 75)]
        later = await feed(analyzer, frames)
        assert [f.phase for f in later] == ["open", "close"]
        assert later[1].data["reason"] == "quiet" and later[1].data["duration_s"] < 2.0
        assert analyzer.finish() == ()

    async def test_an_ordinary_burst_is_not_cut(self, pool: ResourcePool, settings: Settings) -> None:
        analyzer = vad(pool, settings, max_duration_s=60.0)
        frames = [still(i) for i in range(20)] + [moving(i) for i in range(20, 35)]
        frames += [still(i) for i in range(35, 60)]
        closes = [f for f in await feed(analyzer, frames) if f.phase == "close"]
        assert [f.data["reason"] for f in closes] == ["quiet"]

    @pytest.mark.parametrize("bad", [0, -1, 100_000, "soon"])
    async def test_max_duration_is_validated(self, pool: ResourcePool, settings: Settings, bad: Any) -> None:
        with pytest.raises(ValidationError, match="max_duration_s"):
            vad(pool, settings, max_duration_s=bad)


class TestScoreModels:
    async def test_any_score_model_can_replace_the_default(
        self, pool: ResourcePool, settings: Settings, tmp_path: Path
    ) -> None:
        register_brightness(pool, tmp_path)
        analyzer = vad(pool, settings, model="bright")
        dark = [Frame(1, i, i * 0.2, np.full((H, W, 3), 40 + i % 2, np.uint8), W, H) for i in range(15)]
        light = [Frame(1, i, i * 0.2, np.full((H, W, 3), 220, np.uint8), W, H) for i in range(15, 18)]
        phases = [f.phase for f in await feed(analyzer, dark + light)]
        assert phases == ["open"]

    async def test_a_detector_model_is_refused(
        self, pool: ResourcePool, settings: Settings, tmp_path: Path
    ) -> None:
        from tests.support.onnx_graphs import yolo_model

        path = yolo_model(tmp_path / "y.onnx")
        pool.register(
            ModelSpec(name="y", kind="detector", path=path, layout="yolov8", class_names=("a", "b"))
        )
        with pytest.raises(ChainError, match="detector"):
            vad(pool, settings, model="y")


def test_severity_bands() -> None:
    assert [severity_for(z, 3.0) for z in (3, 11.9, 12, 30, 75)] == [
        "low",
        "low",
        "medium",
        "high",
        "critical",
    ]
