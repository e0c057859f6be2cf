"""Execution providers: prefer CUDA, then TensorRT, then CPU, keeping only those that really load.

`onnxruntime-gpu` lists CUDA and TensorRT as available even on a machine without a GPU or without the
CUDA libraries; asking for them then prints errors and silently falls back. So each provider is probed
once per process on a one-node graph, and only the ones that actually came up are offered to sessions.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from collections.abc import Sequence

import onnxruntime as ort

log = logging.getLogger("argus.inference")

PREFERENCE = ("CUDAExecutionProvider", "TensorrtExecutionProvider", "CPUExecutionProvider")
CPU = "CPUExecutionProvider"

_probe_lock = threading.Lock()
_probed: dict[str, bool] = {}


def _tiny_model() -> bytes:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def _loads(provider: str) -> bool:
    if provider == CPU:
        return True
    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # the failed-load errors are expected here; keep them out of the log
    previous = 2
    try:
        ort.set_default_logger_severity(4)
        # onnxruntime print()s its own fallback banner; it is the expected outcome of a probe.
        with contextlib.redirect_stdout(io.StringIO()):
            session = ort.InferenceSession(_tiny_model(), opts, providers=[provider, CPU])
        return session.get_providers()[0] == provider
    except Exception:
        return False
    finally:
        ort.set_default_logger_severity(previous)


def usable_providers(wanted: Sequence[str] | None = None) -> list[str]:
    """The providers, in preference order, that are both available and load; always ends with CPU."""
    available = set(ort.get_available_providers())
    order = [p for p in (wanted or PREFERENCE) if p in available or p == CPU]
    result: list[str] = []
    with _probe_lock:
        for provider in order:
            if provider not in _probed:
                _probed[provider] = _loads(provider)
            if _probed[provider]:
                result.append(provider)
    if CPU not in result:
        result.append(CPU)
    return result


def active_provider(session: ort.InferenceSession) -> str:
    """The provider that runs the graph: the first one the session kept."""
    return str(session.get_providers()[0])
