"""Batch calibration: the decision rule on a scripted clock, then real onnxruntime sessions in the pool."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from onnx import TensorProto, helper, numpy_helper

from app.config import Settings
from app.inference.batcher import MicroBatcher
from app.inference.calibration import calibrate, candidate_sizes, synthetic_item
from app.inference.manifest import ModelSpec
from app.inference.pool import ResourcePool
from tests.support.onnx_graphs import linear_spec, yolo_model


def elementwise_model(path: Path, width: int = 16) -> Path:
    """x [B, W] -> relu(x * 3 - 1) + x: per-element work only, so batching is nearly free per item."""
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "three"], ["m"]),
            helper.make_node("Sub", ["m", "one"], ["s"]),
            helper.make_node("Relu", ["s"], ["r"]),
            helper.make_node("Add", ["r", "x"], ["y"]),
        ],
        "elementwise",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
        initializer=[
            numpy_helper.from_array(np.array(3, np.float32), "three"),
            numpy_helper.from_array(np.array(1, np.float32), "one"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def elementwise_spec(path: Path, **overrides: object) -> ModelSpec:
    return ModelSpec(name="elementwise", kind="score", path=elementwise_model(path)).model_copy(
        update=overrides
    )


class ScriptedModel:
    """A run function whose cost per batch size is given, on a clock it advances: decisions, exactly."""

    def __init__(self, cost_ms: Callable[[int], float]) -> None:
        self.now = 0.0
        self.cost_ms = cost_ms
        self.sizes: list[int] = []

    def clock(self) -> float:
        return self.now

    def __call__(self, items: Sequence[np.ndarray]) -> None:
        self.sizes.append(len(items))
        self.now += self.cost_ms(len(items)) / 1000


ITEM = np.zeros(4, np.float32)


class TestDecisionRule:
    def test_candidate_sizes_double_up_to_the_cap(self) -> None:
        assert candidate_sizes(1) == [1]
        assert candidate_sizes(3) == [1, 2, 3]
        assert candidate_sizes(16) == [1, 2, 4, 8, 16]
        assert candidate_sizes(12) == [1, 2, 4, 8, 12]

    def test_overhead_bound_model_takes_the_cap(self) -> None:
        model = ScriptedModel(lambda b: 1.0 + 0.01 * b)  # per-run overhead dominates
        result = calibrate(model, ITEM, 16, clock=model.clock)
        assert (result.max_batch, result.reason) == (16, "cap")
        assert [p.batch for p in result.curve] == [1, 2, 4, 8, 16]
        assert result.curve[-1].per_item_ms < result.curve[0].per_item_ms / 10

    def test_conv_like_model_stops_at_the_knee(self) -> None:
        # 18 ms alone, 13 ms per item in pairs, then per-item cost climbs (cache): the bench's detector
        per_item = {1: 18.0, 2: 13.0, 4: 22.0, 8: 33.0, 16: 41.0}
        model = ScriptedModel(lambda b: per_item[b] * b)
        result = calibrate(model, ITEM, 16, clock=model.clock)
        assert (result.max_batch, result.reason) == (2, "knee")
        assert [p.batch for p in result.curve] == [1, 2, 4]  # 8 and 16 never run
        assert 8 not in model.sizes

    def test_a_size_within_tolerance_of_the_best_is_still_taken(self) -> None:
        per_item = {1: 10.0, 2: 10.5, 4: 10.8, 8: 12.0}  # 4 is 8 % worse than 1: within 10 %
        model = ScriptedModel(lambda b: per_item[b] * b)
        result = calibrate(model, ITEM, 8, clock=model.clock, tolerance=0.1)
        assert (result.max_batch, result.reason) == (4, "knee")

    def test_a_run_longer_than_max_run_ms_is_never_chosen(self) -> None:
        model = ScriptedModel(lambda b: 10.0 * b**0.5)  # batching pays, but 16 takes 40 ms
        result = calibrate(model, ITEM, 16, clock=model.clock, max_run_ms=25.0)
        assert (result.max_batch, result.reason) == (4, "latency")  # 4 takes 20 ms, 8 takes 28 ms

    def test_the_time_budget_bounds_the_sweep(self) -> None:
        model = ScriptedModel(lambda b: 100.0 * b)  # 100 ms per item, no gain
        result = calibrate(model, ITEM, 16, clock=model.clock, budget_s=1.0)
        assert result.reason == "budget" and result.max_batch <= 2
        assert model.now <= 1.0  # never started a step it could not finish in time
        assert result.took_ms <= 1000

    def test_synthetic_item_needs_a_static_shape(self) -> None:
        item = synthetic_item((2, 3), "float32")
        assert item is not None and item.shape == (2, 3) and item.dtype == np.float32
        assert synthetic_item((None, 3), "float32") is None


class TestPoolCalibration:
    async def test_batch_friendly_model_batches_and_results_equal_single_runs(self, tmp_path: Path) -> None:
        rng = np.random.default_rng(3)
        xs = [rng.standard_normal(16).astype(np.float32) for _ in range(24)]
        async with ResourcePool(tmp_path, builtin_vad=False, max_batch=16, max_wait_ms=20) as pool:
            pool.register(elementwise_spec(tmp_path / "e.onnx"))
            await pool.load("elementwise")
            stats = pool.stats("elementwise")[0]
            batched = await asyncio.gather(*(pool.infer("elementwise", x) for x in xs))
            histogram = pool.stats("elementwise")[0]["batch_histogram"]
        async with ResourcePool(tmp_path, builtin_vad=False, batching=False) as single:
            single.register(elementwise_spec(tmp_path / "e.onnx"))
            singles = [await single.infer("elementwise", x) for x in xs]
            assert single.stats("elementwise")[0]["calibration"]["reason"] == "disabled"
        # then calibration found batching pays for 16 floats an item (per-run overhead is everything)
        calibration = stats["calibration"]
        assert 1 < stats["max_batch"] == calibration["max_batch"] <= 16
        assert calibration["cap"] == 16 and calibration["reason"] in ("cap", "knee", "latency", "budget")
        batches = [p["batch"] for p in calibration["curve"]]
        assert batches[:2] == [1, 2] and batches == sorted(batches)
        assert all(p["run_ms"] > 0 and p["samples"] >= 3 for p in calibration["curve"])
        assert max(int(k) for k in histogram) <= stats["max_batch"]
        for x, got, alone in zip(xs, batched, singles, strict=True):
            np.testing.assert_array_equal(got[0], alone[0])
            np.testing.assert_array_equal(got[0], np.maximum(x * 3 - 1, 0) + x)

    async def test_the_manifest_cap_bounds_calibration(self, tmp_path: Path) -> None:
        async with ResourcePool(tmp_path, builtin_vad=False, max_batch=16, max_wait_ms=20) as pool:
            pool.register(elementwise_spec(tmp_path / "e.onnx", max_batch=3))
            await asyncio.gather(*(pool.infer("elementwise", np.ones(16, np.float32)) for _ in range(12)))
            stats = pool.stats("elementwise")[0]
        assert stats["calibration"]["cap"] == 3
        assert {p["batch"] for p in stats["calibration"]["curve"]} <= {1, 2, 3}
        assert 1 <= stats["max_batch"] <= 3
        assert max(int(k) for k in stats["batch_histogram"]) <= 3

    async def test_off_switch_fixed_batch_and_dynamic_shapes_are_not_measured(self, tmp_path: Path) -> None:
        async with ResourcePool(tmp_path, builtin_vad=False, max_batch=8, calibrate=False) as off:
            off.register(elementwise_spec(tmp_path / "e.onnx"))
            await off.load("elementwise")
            assert off.stats("elementwise")[0]["calibration"] == {
                "max_batch": 8, "cap": 8, "reason": "disabled", "took_ms": 0.0, "curve": []
            }  # fmt: skip
        async with ResourcePool(tmp_path, builtin_vad=False) as pool:
            pool.register(linear_spec(tmp_path / "m1.onnx", name="fixed", batch=1))
            await pool.load("fixed")
            fixed = pool.stats("fixed")[0]
        assert fixed["max_batch"] == 1 and fixed["calibration"]["reason"] == "fixed_batch"

    async def test_settings_reach_the_pool(self, settings: Settings) -> None:
        pool = ResourcePool.from_settings(settings.model_copy(update={"batch_calibrate": False}))
        assert pool.calibrate is False
        assert pool.max_run_ms == settings.analyzer_budget_ms / 2
        # two runs in flight by default, the cores split between them
        assert pool.runs_in_flight == settings.batch_runs_in_flight == 2
        assert pool.intra_op_threads == max(1, (os.cpu_count() or 1) // 2)
        one = ResourcePool.from_settings(settings.model_copy(update={"batch_runs_in_flight": 1}))
        assert (one.runs_in_flight, one.intra_op_threads) == (1, None)  # one run on every core


class TestModelsApi:
    async def test_registered_model_shows_its_curve(
        self, app_client: httpx.AsyncClient, settings: Settings
    ) -> None:
        onnx_path = yolo_model(settings.resolved_models_dir / "ext" / "tiny.onnx")
        manifest = {
            "name": "tiny-yolo", "kind": "detector", "path": str(onnx_path), "input_size": [32, 32],
            "layout": "yolov8", "class_names": ["person", "car"], "max_batch": 4,
        }  # fmt: skip
        resp = await app_client.post("/api/models", json={"manifest": manifest})
        assert resp.status_code == 201, resp.text
        body = (await app_client.get("/api/models/tiny-yolo")).json()
        assert body["calibration"]["cap"] == 4
        assert 1 <= body["max_batch"] == body["calibration"]["max_batch"] <= 4
        curve = body["calibration"]["curve"]
        assert curve[0]["batch"] == 1 and curve[0]["per_item_ms"] > 0 and curve[0]["items_per_s"] > 0


class TestRunsInFlight:
    async def test_two_batches_run_side_by_side(self) -> None:
        # each run waits for a second one to be running at the same time: one at a time would time out
        together = threading.Barrier(2, timeout=10)

        def run(items: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
            together.wait()
            return [[x * 2] for x in items]

        with ThreadPoolExecutor(2) as executor:
            batcher = MicroBatcher("t", run, executor=executor, max_batch=1, runs_in_flight=2)
            results = await asyncio.gather(*(batcher.submit(np.full(1, i, np.float32)) for i in range(4)))
            await batcher.close()
        assert [float(r[0][0]) for r in results] == [0.0, 2.0, 4.0, 6.0]

    async def test_pool_results_with_two_runs_in_flight_equal_single_runs(self, tmp_path: Path) -> None:
        rng = np.random.default_rng(5)
        xs = [rng.standard_normal(16).astype(np.float32) for _ in range(20)]
        async with ResourcePool(
            tmp_path, builtin_vad=False, max_batch=4, runs_in_flight=2, intra_op_threads=1
        ) as pool:
            pool.register(elementwise_spec(tmp_path / "e.onnx"))
            got = await asyncio.gather(*(pool.infer("elementwise", x) for x in xs))
            stats = pool.stats("elementwise")[0]
        assert stats["calls"] == 20 and stats["errors"] == 0
        for x, out in zip(xs, got, strict=True):
            np.testing.assert_array_equal(out[0], np.maximum(x * 3 - 1, 0) + x)
