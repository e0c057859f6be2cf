"""Small ONNX graphs with known outputs, built with the onnx helper API, for real onnxruntime sessions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from app.inference.manifest import ModelSpec

WEIGHTS = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
BIAS = np.array([1.0, -1.0, 0.5], dtype=np.float32)


def _save(graph: object, path: Path, opset: int = 17) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])  # type: ignore[arg-type]
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def linear_model(path: Path, batch: int | str = "batch") -> Path:
    """x [B, 4] -> y = x @ W + b [B, 3], s = sum(x) [B]: two outputs, exact in float32."""
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["y"]),
        helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3]),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, [batch]),
        ],
        initializer=[
            numpy_helper.from_array(WEIGHTS, "w"),
            numpy_helper.from_array(BIAS, "b"),
            numpy_helper.from_array(np.array([1], np.int64), "axes"),
        ],
    )
    return _save(graph, path)


def linear_reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x @ WEIGHTS + BIAS, x.sum()


def linear_spec(path: Path, name: str = "linear", batch: int | str = "batch") -> ModelSpec:
    return ModelSpec(name=name, kind="score", path=linear_model(path, batch))


def yolo_model(path: Path, classes: int = 2, boxes: int = 8, size: int = 32, layout: str = "yolov8") -> Path:
    """An image [B, 3, S, S] -> a YOLO-shaped output ([B, 4+C, N] or [B, N, 5+C]) of pooled pixels."""
    feats = 4 + classes if layout == "yolov8" else 5 + classes
    nodes = [
        helper.make_node("GlobalAveragePool", ["images"], ["g"]),  # [B, 3, 1, 1]
        helper.make_node("Flatten", ["g"], ["f"]),  # [B, 3]
        helper.make_node("MatMul", ["f", "w"], ["m"]),  # [B, feats * N]
        helper.make_node("Reshape", ["m", "shape"], ["output0"]),
    ]
    shape = [0, feats, boxes] if layout == "yolov8" else [0, boxes, feats]
    out_shape = ["batch", *shape[1:]]
    graph = helper.make_graph(
        nodes,
        "yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_shape)],
        initializer=[
            numpy_helper.from_array(np.ones((3, feats * boxes), np.float32), "w"),
            numpy_helper.from_array(np.array(shape, np.int64), "shape"),
        ],
    )
    return _save(graph, path)
