"""ResourcePool: one ONNX session per model, loaded on first use and shared by every camera.

`await pool.infer(name, item)` takes ONE item's pre-processed input (no batch dim) and returns that
item's outputs (batch dim removed). Behind it a per-model MicroBatcher turns concurrent calls from many
cameras into one run; `batching=False` keeps the lock-serialised single-frame path for comparison.
Registered models persist as manifests under `models_dir`, so they come back after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from app.errors import Conflict, NotFound
from app.inference.batcher import MicroBatcher
from app.inference.builtin_vad import ensure_builtin_vad
from app.inference.calibration import Calibration, calibrate_model
from app.inference.manifest import MANIFEST_SUFFIX, ManifestError, ModelSpec, TensorInfo, check_model
from app.inference.model import OnnxModel
from app.metrics import INFERENCE_BATCH, INFERENCE_LATENCY, INFERENCE_QUEUE_WAIT

if TYPE_CHECKING:
    from collections.abc import Sequence

    from app.config import Settings

log = logging.getLogger("argus.inference")

_SAMPLES = 2048  # recent runs kept for percentiles


class UnknownModel(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__("model", repr(name))
        self.field = "name"


class ModelInUse(Conflict):
    def __init__(self, name: str, cameras: set[int]) -> None:
        super().__init__(f"model {name!r} is used by cameras {sorted(cameras)}; detach them first", "name")


class ModelExists(Conflict):
    def __init__(self, name: str) -> None:
        super().__init__(f"a different model named {name!r} is already registered", "name")


def _pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    return round(float(np.percentile(np.fromiter(values, float), q)) * 1000, 3)


@dataclass
class ModelStats:
    calls: int = 0
    runs: int = 0
    errors: int = 0
    batch_sizes: Counter[int] = field(default_factory=Counter)
    waits: deque[float] = field(default_factory=lambda: deque(maxlen=_SAMPLES))
    run_times: deque[float] = field(default_factory=lambda: deque(maxlen=_SAMPLES))

    def record(self, model: str, size: int, waits: list[float], run_s: float) -> None:
        self.calls += size
        self.runs += 1
        self.batch_sizes[size] += 1
        self.waits.extend(waits)
        self.run_times.append(run_s)
        INFERENCE_BATCH.labels(model).observe(size)
        INFERENCE_LATENCY.labels(model).observe(run_s)
        for w in waits:
            INFERENCE_QUEUE_WAIT.labels(model).observe(w)


@dataclass
class _Entry:
    spec: ModelSpec
    info: TensorInfo
    manifest: Path | None = None  # where it persists, when it does
    model: OnnxModel | None = None
    batcher: MicroBatcher | None = None
    calibration: Calibration | None = None
    loads: int = 0
    load_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    loading: asyncio.Future[OnnxModel] | None = None
    run_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # the batching=False path
    cameras: set[int] = field(default_factory=set)
    stats: ModelStats = field(default_factory=ModelStats)


class ResourcePool:
    def __init__(
        self,
        models_dir: Path | None = None,
        *,
        max_batch: int = 16,
        max_wait_ms: float = 4.0,
        batching: bool = True,
        providers: Sequence[str] | None = None,
        builtin_vad: bool = True,
        workers: int = 4,
        calibrate: bool = True,
        max_run_ms: float | None = None,
        runs_in_flight: int = 1,
        intra_op_threads: int | None = None,
    ) -> None:
        self.models_dir = models_dir
        self.max_batch = max_batch
        self.max_wait_ms = max_wait_ms
        self.batching = batching
        # Measure each model's batch curve at load and cap its batches where per-item time stops
        # improving (calibration.py); a batch whose run takes over max_run_ms is never chosen.
        self.calibrate = calibrate
        self.max_run_ms = max_run_ms
        # Batches of one model run side by side (batcher.py), each on its share of the cores: a conv
        # model on CPU gains little from batching (each image is already a big GEMM) and one run keeps
        # its intra-op threads waiting on each other, so two single-threaded runs on two cores do more.
        self.runs_in_flight = runs_in_flight
        if intra_op_threads is None and runs_in_flight > 1:
            intra_op_threads = max(1, (os.cpu_count() or 1) // runs_in_flight)
        self.intra_op_threads = intra_op_threads
        self._providers = providers
        self._builtin_vad = builtin_vad
        self._workers = workers
        self._executor: ThreadPoolExecutor | None = None
        self._entries: dict[str, _Entry] = {}

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> ResourcePool:
        values: dict[str, Any] = {
            "max_batch": settings.batch_max_size,
            "max_wait_ms": settings.batch_max_wait_ms,
            "calibrate": settings.batch_calibrate,
            "runs_in_flight": settings.batch_runs_in_flight,
            # a batch must leave room in the analyzer's per-frame budget for the wait before it
            "max_run_ms": settings.analyzer_budget_ms / 2,
        }
        values.update(overrides)
        return cls(settings.resolved_models_dir, **values)

    # -- lifecycle ----------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="argus.infer")
        if self.models_dir is not None:
            await asyncio.to_thread(self._load_dir, self.models_dir)
        log.info("model pool ready: %d models (%s)", len(self._entries), ", ".join(self._entries) or "none")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for entry in self._entries.values():
            if entry.batcher is not None:
                await entry.batcher.close()
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown, True)
            self._executor = None
        for entry in self._entries.values():
            entry.model, entry.batcher = None, None
        log.info("model pool stopped")

    def _load_dir(self, models_dir: Path) -> None:
        models_dir.mkdir(parents=True, exist_ok=True)
        if self._builtin_vad:
            ensure_builtin_vad(models_dir)
        for manifest in sorted(models_dir.glob(f"*{MANIFEST_SUFFIX}")):
            try:
                spec = ModelSpec.from_file(manifest)
                self._add(spec, manifest)
            except (ManifestError, Conflict) as exc:
                log.error("skipping model manifest %s: %s", manifest.name, exc)

    # -- registry -----------------------------------------------------------------------------------

    def register(self, spec: ModelSpec, *, persist: bool = False) -> ModelSpec:
        """Validate `spec` against its ONNX file and add it; returns the spec with its input resolved.

        Blocking (reads the file): call it at start-up or through `add()`. Registering the same spec
        again is a no-op; a different model under a taken name is a ModelExists conflict.
        """
        manifest = None
        if persist and self.models_dir is not None:
            manifest = self.models_dir / f"{spec.name}{MANIFEST_SUFFIX}"
        entry = self._add(spec, manifest)
        if manifest is not None:
            spec.model_copy(update={"path": spec.path.resolve()}).write(manifest)
        return entry.spec

    def _add(self, spec: ModelSpec, manifest: Path | None) -> _Entry:
        resolved, info = check_model(spec)
        existing = self._entries.get(spec.name)
        if existing is not None:
            if existing.spec == resolved:
                return existing
            raise ModelExists(spec.name)
        entry = _Entry(resolved, info, manifest)
        self._entries[spec.name] = entry
        log.info("model %s registered (%s, %s)", spec.name, spec.kind, spec.path)
        return entry

    async def add(self, spec: ModelSpec, *, persist: bool = True) -> ModelSpec:
        """Register and load at once, so a file ONNX Runtime cannot run is refused now, not at run time."""
        resolved = await asyncio.to_thread(self.register, spec, persist=False)
        try:
            await self.load(spec.name)
        except Exception as exc:
            self._entries.pop(spec.name, None)
            raise ManifestError(f"ONNX Runtime cannot load {spec.path.name}: {exc}", "path") from None
        if persist and self.models_dir is not None:
            manifest = self.models_dir / f"{spec.name}{MANIFEST_SUFFIX}"
            await asyncio.to_thread(resolved.write, manifest)
            self._entries[spec.name].manifest = manifest
        return resolved

    async def unregister(self, name: str) -> None:
        """Unload and forget a model (and its persisted manifest); refused while a camera uses it."""
        entry = self._entry(name)
        if entry.cameras:
            raise ModelInUse(name, entry.cameras)
        del self._entries[name]
        if entry.batcher is not None:
            await entry.batcher.close()
        if entry.manifest is not None:
            entry.manifest.unlink(missing_ok=True)
        log.info("model %s unregistered", name)

    def attach(self, name: str, camera_id: int) -> None:
        self._entry(name).cameras.add(camera_id)

    def detach(self, name: str, camera_id: int) -> None:
        entry = self._entries.get(name)
        if entry is not None:
            entry.cameras.discard(camera_id)

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def spec(self, name: str) -> ModelSpec:
        """The resolved spec (input_name and input_shape filled in from the graph)."""
        return self._entry(name).spec

    def _entry(self, name: str) -> _Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownModel(name) from None

    # -- inference ----------------------------------------------------------------------------------

    async def load(self, name: str) -> OnnxModel:
        """The model's session, created on first use; concurrent first callers share one load.

        The load runs as a task of its own and callers wait on it shielded: a caller that gives up (an
        analyzer's per-frame budget is far shorter than loading and calibrating a real detector) must not
        cancel it, or every frame would restart a load that never finishes."""
        entry = self._entry(name)
        if entry.model is not None:
            return entry.model
        if entry.loading is None or entry.loading.done():
            entry.loading = asyncio.ensure_future(self._load(name, entry))
            # retrieved here too: when every caller gave up, a failed load must not log "never retrieved"
            entry.loading.add_done_callback(lambda f: f.cancelled() or f.exception())
        return await asyncio.shield(entry.loading)

    async def _load(self, name: str, entry: _Entry) -> OnnxModel:
        async with entry.load_lock:
            if entry.model is None:
                loop = asyncio.get_running_loop()
                model = await loop.run_in_executor(
                    self._executor,
                    lambda: OnnxModel(
                        entry.spec,
                        entry.info,
                        self._providers,
                        runs_in_flight=self.runs_in_flight,
                        intra_op_threads=self.intra_op_threads,
                    ),
                )
                entry.calibration = await loop.run_in_executor(
                    self._executor,
                    lambda: calibrate_model(
                        model,
                        entry.spec.max_batch or self.max_batch,
                        enabled=self.calibrate and self.batching,
                        max_run_ms=self.max_run_ms,
                    ),
                )
                entry.batcher = MicroBatcher(
                    name,
                    model.run_batch,
                    executor=self._executor,
                    max_batch=entry.calibration.max_batch,
                    max_wait_ms=self.max_wait_ms,
                    on_batch=lambda n, waits, run_s: entry.stats.record(name, n, waits, run_s),
                    runs_in_flight=self.runs_in_flight,
                )
                entry.loads += 1
                entry.model = model
        return entry.model

    async def infer(self, name: str, tensor: np.ndarray) -> list[np.ndarray]:
        """Run one item (no batch dim) and return its outputs (no batch dim), batched with other callers."""
        model = await self.load(name)
        entry = self._entries[name]
        item = model.check_item(np.asarray(tensor))
        try:
            if self.batching or model.max_batch not in (None, 1):
                assert entry.batcher is not None
                return await entry.batcher.submit(item)
            return await self._infer_serial(entry, model, item)
        except Exception:
            entry.stats.errors += 1
            raise

    async def _infer_serial(self, entry: _Entry, model: OnnxModel, item: np.ndarray) -> list[np.ndarray]:
        queued = time.perf_counter()
        async with entry.run_lock:
            started = time.perf_counter()
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self._executor, model.run_batch, [item])
            entry.stats.record(entry.spec.name, 1, [started - queued], time.perf_counter() - started)
        return result[0]

    # -- reporting ----------------------------------------------------------------------------------

    def stats(self, name: str | None = None) -> list[dict[str, Any]]:
        names = [name] if name is not None else list(self._entries)
        return [self._stats(n, self._entry(n)) for n in names]

    def _stats(self, name: str, entry: _Entry) -> dict[str, Any]:
        s = entry.stats
        return {
            "name": name,
            "kind": entry.spec.kind,
            "path": str(entry.spec.path),
            "input_shape": list(entry.spec.input_shape or ()),
            "dynamic_batch": entry.spec.dynamic_batch,
            "loaded": entry.model is not None,
            "loads": entry.loads,
            "provider": entry.model.provider if entry.model else None,
            "max_batch": entry.batcher.max_batch if entry.batcher else None,
            "calibration": entry.calibration.to_json() if entry.calibration else None,
            "calls": s.calls,
            "runs": s.runs,
            "errors": s.errors,
            "batch_histogram": {str(k): v for k, v in sorted(s.batch_sizes.items())},
            "queue_wait_ms": {"p50": _pct(s.waits, 50), "p95": _pct(s.waits, 95)},
            "run_ms": {"p50": _pct(s.run_times, 50), "p95": _pct(s.run_times, 95)},
            "queue_depth": entry.batcher.queue_depth if entry.batcher else 0,
            "cameras": sorted(entry.cameras),
        }

    def summary(self) -> dict[str, Any]:
        """The short form for /api/health."""
        return {
            "registered": len(self._entries),
            "loaded": sum(1 for e in self._entries.values() if e.model is not None),
            "batching": self.batching,
            "providers": {n: e.model.provider for n, e in self._entries.items() if e.model is not None},
        }
