"""ResourcePool on real onnxruntime sessions: one load, cross-caller batching, exact per-caller results."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from app.inference.manifest import ModelSpec
from app.inference.pool import ModelExists, ModelInUse, ResourcePool, UnknownModel
from app.inference.providers import CPU, usable_providers
from tests.support.onnx_graphs import linear_reference, linear_spec

HAS_NVIDIA = Path("/dev/nvidia0").exists()


def inputs(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.standard_normal(4).astype(np.float32) for _ in range(n)]


class TestLoading:
    async def test_concurrent_first_calls_load_one_shared_session(self, tmp_path: Path) -> None:
        async with ResourcePool(tmp_path, builtin_vad=False) as pool:
            pool.register(linear_spec(tmp_path / "m.onnx"))
            # given 40 callers racing on a model nobody has loaded yet
            models = await asyncio.gather(*(pool.load("linear") for _ in range(20)))
            results = await asyncio.gather(*(pool.infer("linear", x) for x in inputs(20)))
            # then one session exists, the same object for everyone
            assert len({id(m.session) for m in models}) == 1
            assert (await pool.load("linear")).session is models[0].session
            assert pool.stats("linear")[0]["loads"] == 1
            assert len(results) == 20

    async def test_provider_is_the_sessions_own_and_falls_back_to_cpu(self, tmp_path: Path) -> None:
        wanted = ["CUDAExecutionProvider", "TensorrtExecutionProvider", CPU]
        async with ResourcePool(tmp_path, builtin_vad=False, providers=wanted) as pool:
            pool.register(linear_spec(tmp_path / "m.onnx"))
            model = await pool.load("linear")
            provider = pool.stats("linear")[0]["provider"]
        usable = usable_providers(wanted)
        assert usable[-1] == CPU
        assert provider == model.session.get_providers()[0] == usable[0]
        if not HAS_NVIDIA:  # no GPU: CUDA is "available" in onnxruntime-gpu, yet unusable
            assert "CUDAExecutionProvider" in ort.get_available_providers()
            assert provider == CPU

    async def test_models_under_models_dir_come_back_after_restart(self, tmp_path: Path) -> None:
        async with ResourcePool(tmp_path / "models") as pool:
            pool.register(linear_spec(tmp_path / "elsewhere" / "m.onnx"), persist=True)
            assert set(pool.names()) == {"vad-motion", "linear"}
        async with ResourcePool(tmp_path / "models") as pool:
            assert set(pool.names()) == {"vad-motion", "linear"}
            out = await pool.infer("linear", np.ones(4, np.float32))
            np.testing.assert_allclose(out[0], linear_reference(np.ones(4, np.float32))[0], rtol=1e-6)


class TestBatching:
    async def test_concurrent_calls_share_runs_and_each_gets_its_own_result(self, tmp_path: Path) -> None:
        xs = inputs(40)
        async with ResourcePool(tmp_path, builtin_vad=False, max_batch=16, max_wait_ms=20) as pool:
            pool.register(linear_spec(tmp_path / "m.onnx"))
            results = await asyncio.gather(*(pool.infer("linear", x) for x in xs))
            stats = pool.stats("linear")[0]
        async with ResourcePool(tmp_path, builtin_vad=False, batching=False) as single:
            single.register(linear_spec(tmp_path / "m.onnx"))
            singles = [await single.infer("linear", x) for x in xs]
        for x, got, alone in zip(xs, results, singles, strict=True):
            y, s = linear_reference(x)
            assert got[0].shape == (3,) and got[1].shape == ()
            np.testing.assert_allclose(got[0], y, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(got[1], s, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(got[0], alone[0], rtol=1e-5, atol=1e-6)
        sizes = {int(k): v for k, v in stats["batch_histogram"].items()}
        assert max(sizes) > 1 and max(sizes) <= 16
        assert sum(k * v for k, v in sizes.items()) == stats["calls"] == 40
        assert stats["runs"] < 40

    async def test_fixed_batch_model_runs_one_item_at_a_time(self, tmp_path: Path) -> None:
        xs = inputs(8)
        async with ResourcePool(tmp_path, builtin_vad=False, max_wait_ms=20) as pool:
            spec = pool.register(linear_spec(tmp_path / "m1.onnx", name="fixed", batch=1))
            assert spec.batch_dim == 1 and not spec.dynamic_batch
            results = await asyncio.gather(*(pool.infer("fixed", x) for x in xs))
            stats = pool.stats("fixed")[0]
        assert stats["batch_histogram"] == {"1": 8}
        for x, got in zip(xs, results, strict=True):
            np.testing.assert_allclose(got[0], linear_reference(x)[0], rtol=1e-5, atol=1e-6)

    async def test_a_manifest_can_cap_the_batch(self, tmp_path: Path) -> None:
        async with ResourcePool(tmp_path, builtin_vad=False, max_batch=16, max_wait_ms=20) as pool:
            spec = linear_spec(tmp_path / "m.onnx").model_copy(update={"max_batch": 3})
            pool.register(spec)
            await asyncio.gather(*(pool.infer("linear", x) for x in inputs(10)))
            sizes = [int(k) for k in pool.stats("linear")[0]["batch_histogram"]]
        assert max(sizes) == 3

    async def test_batching_off_serialises_single_frames(self, tmp_path: Path) -> None:
        async with ResourcePool(tmp_path, builtin_vad=False, batching=False) as pool:
            pool.register(linear_spec(tmp_path / "m.onnx"))
            await asyncio.gather(*(pool.infer("linear", x) for x in inputs(10)))
            assert pool.stats("linear")[0]["batch_histogram"] == {"1": 10}

    async def test_wrong_item_shape_is_refused_before_it_reaches_a_batch(self, tmp_path: Path) -> None:
        async with ResourcePool(tmp_path, builtin_vad=False) as pool:
            pool.register(linear_spec(tmp_path / "m.onnx"))
            with pytest.raises(ValueError, match=r"shape \[4\]"):
                await pool.infer("linear", np.ones((1, 4), np.float32))  # a batch dim the caller must not add
            # a float64 item is cast, not refused
            out = await pool.infer("linear", np.ones(4))
            assert out[0].dtype == np.float32


class TestRegistry:
    async def test_unknown_model_is_a_404(self, tmp_path: Path) -> None:
        async with ResourcePool(tmp_path, builtin_vad=False) as pool:
            with pytest.raises(UnknownModel) as err:
                await pool.infer("nope", np.ones(4, np.float32))
            assert err.value.status_code == 404

    async def test_unregister_is_refused_while_a_camera_uses_the_model(self, tmp_path: Path) -> None:
        async with ResourcePool(tmp_path) as pool:
            pool.register(linear_spec(tmp_path / "m.onnx"), persist=True)
            pool.attach("linear", 3)
            with pytest.raises(ModelInUse) as err:
                await pool.unregister("linear")
            assert err.value.status_code == 409 and "[3]" in err.value.message
            assert pool.stats("linear")[0]["cameras"] == [3]
            pool.detach("linear", 3)
            await pool.unregister("linear")
            assert "linear" not in pool
            assert not (tmp_path / "linear.json").exists()

    async def test_same_name_different_model_conflicts_same_spec_is_idempotent(self, tmp_path: Path) -> None:
        async with ResourcePool(tmp_path, builtin_vad=False) as pool:
            spec = linear_spec(tmp_path / "m.onnx")
            pool.register(spec)
            pool.register(spec)
            other = ModelSpec(name="linear", kind="vad", path=spec.path)
            with pytest.raises(ModelExists):
                pool.register(other)
