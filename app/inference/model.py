"""OnnxModel: one InferenceSession, run on a batch and split back into per-item outputs.

Runs are blocking C calls that release the GIL; the pool calls `run_batch` from its executor threads and
never from the event loop. The session's lock keeps one run at a time per model (ONNX Runtime sessions
are thread-safe, but concurrent runs would only fight over the same cores and blur the batching), or
`runs_in_flight` runs when the pool asks for more (with `intra_op_threads`, to split the cores).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import numpy as np
import onnxruntime as ort

from app.inference.manifest import ModelSpec, TensorInfo
from app.inference.providers import active_provider, usable_providers

log = logging.getLogger("argus.inference")


class OnnxModel:
    def __init__(
        self,
        spec: ModelSpec,
        info: TensorInfo,
        providers: Sequence[str] | None = None,
        *,
        runs_in_flight: int = 1,
        intra_op_threads: int | None = None,
    ) -> None:
        self.spec = spec
        self.input = info
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        # Idle intra-op threads would otherwise spin after every run, taking CPU from the decode threads
        # on the same few cores; a model run here is milliseconds, the wake-up cost is microseconds.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if intra_op_threads is not None:
            opts.intra_op_num_threads = intra_op_threads  # 0 = one per core (onnxruntime's default)
        started = time.perf_counter()
        self.session = ort.InferenceSession(str(spec.path), opts, providers=usable_providers(providers))
        self.load_s = time.perf_counter() - started
        self.provider = active_provider(self.session)
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.dtype = np.dtype(info.dtype)
        self.fixed_batch: int | None = info.shape[0]  # None = dynamic
        self.lock = threading.BoundedSemaphore(runs_in_flight)
        log.info(
            "model %s loaded on %s in %.0f ms (input %s %s, batch %s)",
            spec.name, self.provider, self.load_s * 1000, info.name, list(info.shape),
            "dynamic" if self.fixed_batch is None else self.fixed_batch,
        )  # fmt: skip

    @property
    def max_batch(self) -> int | None:
        """None = any batch size; else the only batch size the graph accepts."""
        return self.fixed_batch

    def check_item(self, item: np.ndarray) -> np.ndarray:
        """One item, without the batch dim, cast to the input dtype; a wrong shape is a ValueError here."""
        want = self.input.shape[1:]
        if item.ndim != len(want) or any(w not in (None, s) for w, s in zip(want, item.shape, strict=True)):
            raise ValueError(
                f"model {self.spec.name} takes items of shape {list(want)} (no batch dim), "
                f"got {list(item.shape)}"
            )
        return item if item.dtype == self.dtype else item.astype(self.dtype)

    def run_batch(self, items: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
        """Stack, run once, split: result[i] is item i's outputs with the batch dim removed."""
        n = len(items)
        batch = np.stack(items)
        if self.fixed_batch is not None and self.fixed_batch > n:
            # A graph pinned to batch N > 1: pad with zeros and drop the padding's outputs.
            pad = np.zeros((self.fixed_batch - n, *batch.shape[1:]), dtype=batch.dtype)
            batch = np.concatenate([batch, pad])
        with self.lock:
            outputs = self.session.run(self.output_names, {self.input.name: batch})
        results: list[list[np.ndarray]] = [[] for _ in range(n)]
        for out in outputs:
            if out.ndim == 0 or out.shape[0] != batch.shape[0]:
                raise RuntimeError(
                    f"model {self.spec.name}: output of shape {list(out.shape)} "
                    f"has no batch dim of {batch.shape[0]}"
                )
            for i in range(n):
                results[i].append(out[i])
        return results
