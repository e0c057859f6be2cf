"""Small ONNX graphs with known outputs (YOLO-layout detectors, a linear model), built with the onnx helper
API for real onnxruntime sessions (no weights to fetch).

- `constant_detector`: ignores its pixels and always emits the given rows (decoding, NMS, mapping).
- `blob_detector`: a real, if tiny, detector: one box per colour channel around the pixels brighter
  than 0.9 (after /255), score 1.0, class = channel (0 red, 1 green, 2 blue in RGB input); a channel
  with no bright pixel scores 0. Move a coloured square between frames and the box moves with it.
- `conv_detector`: strided convolutions with random weights ending in a YOLOv8-shaped head, for
  benchmarks that need a detector of realistic cost (its boxes are meaningless).
- `linear_model` / `linear_spec`: x [B, 4] -> x @ W + b and sum(x), exact in float32 (`linear_reference`).
- `yolo_model`: an image -> a YOLO-shaped output of pooled pixels, for shape and manifest tests.
All take a dynamic batch dimension, so the pool can batch them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from app.inference.manifest import ModelSpec

Layout = Literal["yolov8", "yolov5"]
OPSET = 13
BLOB_CLASSES = ("red", "green", "blue")


def _model(
    nodes: list[onnx.NodeProto],
    inits: list[onnx.TensorProto],
    size: tuple[int, int],
    out_shape: list[int | str],
) -> onnx.ModelProto:
    width, height = size
    graph = helper.make_graph(
        nodes,
        "yolo_test",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, height, width])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", *out_shape])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def constant_detector(
    rows: np.ndarray, size: tuple[int, int] = (64, 64), layout: Layout = "yolov8"
) -> onnx.ModelProto:
    """rows: one item's output, [4+C, N] for yolov8 or [N, 5+C] for yolov5, repeated for every item."""
    const = np.asarray(rows, np.float32)[None]
    nodes = [
        # 0 * max(images) per item ties the output's batch dim to the input's.
        helper.make_node("ReduceMax", ["images"], ["s4"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["s4", "shape3"], ["s"]),
        helper.make_node("Mul", ["s", "zero"], ["z"]),
        helper.make_node("Add", ["z", "rows"], ["output0"]),
    ]
    inits = [
        numpy_helper.from_array(const, "rows"),
        numpy_helper.from_array(np.zeros((1, 1, 1), np.float32), "zero"),
        numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape3"),
    ]
    return _model(nodes, inits, size, list(const.shape[1:]))


def blob_detector(
    size: tuple[int, int] = (64, 64), layout: Layout = "yolov8", threshold: float = 0.9
) -> onnx.ModelProto:
    nodes: list[onnx.NodeProto] = []
    inits = [
        numpy_helper.from_array(np.array(threshold, np.float32), "thr"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
    ]
    anchors = []
    for c in range(3):
        p = f"c{c}_"
        inits.append(numpy_helper.from_array(np.array([c], np.int64), p + "idx"))
        nodes += [
            helper.make_node("Gather", ["images", p + "idx"], [p + "x"], axis=1),  # [B,1,H,W]
            helper.make_node("Greater", [p + "x", "thr"], [p + "gt"]),
            helper.make_node("Cast", [p + "gt"], [p + "m"], to=TensorProto.FLOAT),
            helper.make_node("ReduceMax", [p + "m"], [p + "col"], axes=[1, 2], keepdims=0),  # [B,W]
            helper.make_node("ReduceMax", [p + "m"], [p + "row"], axes=[1, 3], keepdims=0),  # [B,H]
            helper.make_node("ReduceMax", [p + "col"], [p + "score"], axes=[1], keepdims=1),  # [B,1]
        ]
        for axis, prof in (("x", "col"), ("y", "row")):
            nodes += [
                helper.make_node("ArgMax", [p + prof], [p + axis + "1i"], axis=1, keepdims=1),
                helper.make_node(
                    "ArgMax", [p + prof], [p + axis + "2i"], axis=1, keepdims=1, select_last_index=1
                ),
                helper.make_node("Cast", [p + axis + "1i"], [p + axis + "1"], to=TensorProto.FLOAT),
                helper.make_node("Cast", [p + axis + "2i"], [p + axis + "2l"], to=TensorProto.FLOAT),
                helper.make_node("Add", [p + axis + "2l", "one"], [p + axis + "2"]),  # exclusive edge
                helper.make_node("Add", [p + axis + "1", p + axis + "2"], [p + axis + "sum"]),
                helper.make_node("Div", [p + axis + "sum", "two"], [p + "c" + axis]),
                helper.make_node("Sub", [p + axis + "2", p + axis + "1"], [p + "len" + axis]),
            ]
        zero, one = p + "zero", p + "one"
        nodes.append(helper.make_node("Sub", [p + "score", p + "score"], [zero]))  # [B,1] zeros
        nodes.append(helper.make_node("Add", [zero, "one"], [one]))  # [B,1] ones
        head = [p + "cx", p + "cy", p + "lenx", p + "leny"]
        if layout == "yolov8":
            parts = [*head, *[p + "score" if k == c else zero for k in range(3)]]
        else:
            parts = [*head, p + "score", *[one if k == c else zero for k in range(3)]]
        nodes.append(helper.make_node("Concat", parts, [p + "vec"], axis=1))  # [B, F]
        nodes.append(helper.make_node("Unsqueeze", [p + "vec", p + "ax"], [p + "anchor"]))
        inits.append(numpy_helper.from_array(np.array([2 if layout == "yolov8" else 1], np.int64), p + "ax"))
        anchors.append(p + "anchor")
    nodes.append(helper.make_node("Concat", anchors, ["output0"], axis=2 if layout == "yolov8" else 1))
    out_shape: list[int | str] = [7, 3] if layout == "yolov8" else [3, 8]
    return _model(nodes, inits, size, out_shape)


def conv_detector(size: int = 320, num_classes: int = 80, width: int = 32, seed: int = 0) -> onnx.ModelProto:
    """YOLOv8-shaped [B, 4+C, N] head on 4 stride-2 conv+ReLU stages then a stride-2 1x1 head conv.

    About 0.35 * width² MMACs at 320x320: width 32 is ~0.7 GFLOPs, width 56 ~2.2 GFLOPs (YOLOv8n at 320).
    """
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    src, channels = "images", 3
    for i, out_ch in enumerate((width, width * 2, width * 4, width * 8)):
        w = (rng.standard_normal((out_ch, channels, 3, 3)) * np.sqrt(2 / (channels * 9))).astype(np.float32)
        inits += [
            numpy_helper.from_array(w, f"w{i}"),
            numpy_helper.from_array(np.zeros(out_ch, np.float32), f"b{i}"),
        ]
        nodes += [
            helper.make_node(
                "Conv", [src, f"w{i}", f"b{i}"], [f"conv{i}"], strides=[2, 2], pads=[1, 1, 1, 1]
            ),
            helper.make_node("Relu", [f"conv{i}"], [f"act{i}"]),
        ]
        src, channels = f"act{i}", out_ch
    feats = 4 + num_classes
    wh = (rng.standard_normal((feats, channels, 1, 1)) * 0.05).astype(np.float32)
    inits += [
        numpy_helper.from_array(wh, "wh"),
        numpy_helper.from_array(np.array([0, feats, -1], np.int64), "shape"),
    ]
    nodes += [
        helper.make_node("Conv", [src, "wh"], ["head"], strides=[2, 2]),
        helper.make_node("Sigmoid", ["head"], ["sig"]),
        helper.make_node("Reshape", ["sig", "shape"], ["output0"]),
    ]
    n = (size // 32) ** 2
    return _model(nodes, inits, (size, size), [feats, n])


WEIGHTS = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
BIAS = np.array([1.0, -1.0, 0.5], dtype=np.float32)


def _save_graph(graph: onnx.GraphProto, path: Path, opset: int = 17) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return save(model, path)


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
    return _save_graph(graph, path)


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
    return _save_graph(graph, path)
