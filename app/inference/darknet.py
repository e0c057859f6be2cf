"""Darknet (.cfg + .weights) -> ONNX, with numpy and `onnx` only.

OpenCV 5 no longer reads Darknet, and the official COCO YOLOs (yolov3-tiny, yolov4-tiny) exist only in
that format, so Argus converts them itself: convolution with batch-norm folded into its weights, leaky /
mish / logistic activations, max-pool, route (concat, or a channel group as in yolov4-tiny), shortcut,
upsample, and the yolo heads decoded inside the graph. The output is YOLOv5-style `[batch, N, 5+C]`
rows (cx, cy, w, h in input pixels, objectness, class scores), so the detector's `yolov5` layout reads it
with no Darknet-specific code. The batch dimension is dynamic: the pool batches it across cameras.

Every layer's output shape is computed while building (and returned, so tests can check it against ONNX
shape inference), and the weights file must hold exactly the floats the cfg asks for: a cfg that does not
match its weights is refused with the count of both, never converted into a model that outputs noise.
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

OPSET = 13
BN_EPS = 1e-5  # darknet's (AlexeyAB) normalize: (x - mean) / sqrt(var + .00001)
INPUT_NAME, OUTPUT_NAME = "images", "output"


class DarknetError(ValueError):
    """The cfg or the weights cannot be converted; the message names the layer (cfg section) at fault."""


@dataclass(frozen=True)
class Section:
    kind: str
    options: dict[str, str]
    line: int

    def get(self, key: str, default: float | str | None = None) -> str:
        if key not in self.options:
            if default is None:
                raise DarknetError(f"[{self.kind}] at line {self.line}: missing {key}")
            return str(default)
        return self.options[key]

    def int(self, key: str, default: int | None = None) -> int:
        return int(float(self.get(key, default)))

    def float(self, key: str, default: float | None = None) -> float:
        return float(self.get(key, default))

    def ints(self, key: str) -> list[builtins.int]:  # `int` here is the method above
        return [int(v) for v in re.split(r"\s*,\s*", self.get(key).strip()) if v]


def parse_cfg(text: str) -> list[Section]:
    """The cfg's sections in order; comments (# or ;) and blank lines dropped."""
    sections: list[Section] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise DarknetError(f"line {n}: bad section header {raw.strip()!r}")
            sections.append(Section(line[1:-1].strip().lower(), {}, n))
        elif "=" in line and sections:
            key, value = line.split("=", 1)
            sections[-1].options[key.strip()] = value.strip()
        else:
            raise DarknetError(f"line {n}: expected [section] or key=value, got {raw.strip()!r}")
    if not sections or sections[0].kind not in {"net", "network"}:
        raise DarknetError("a Darknet cfg starts with a [net] section")
    return sections


@dataclass(frozen=True)
class LayerShape:
    index: int  # darknet's layer index (the [net] section not counted)
    kind: str
    channels: int
    height: int
    width: int


@dataclass
class Conversion:
    model: object  # onnx.ModelProto (typed loosely: onnx is imported lazily)
    layers: list[LayerShape]
    input_size: tuple[int, int]  # (width, height)
    num_classes: int
    num_boxes: int  # N of the [batch, N, 5+C] output
    weights_floats: int


@dataclass
class _Builder:
    nodes: list = field(default_factory=list)
    initializers: list = field(default_factory=list)
    n: int = 0

    def name(self, stem: str) -> str:
        self.n += 1
        return f"{stem}_{self.n}"

    def const(self, stem: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(stem)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], stem: str | None = None, **attrs: Any) -> str:
        from onnx import helper

        out = self.name(stem or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


class _Weights:
    """Reads the weights file's float32 body in cfg order; counts what the cfg asks for."""

    def __init__(self, data: bytes | None, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed) if data is None else None
        self.pos = 0
        if data is None:  # random weights (tests, size planning): any count is served
            self.floats = np.zeros(0, np.float32)
            return
        if len(data) < 20:
            raise DarknetError(f"the weights file is {len(data)} bytes: too short for a Darknet header")
        major, minor, _ = np.frombuffer(data[:12], np.int32)
        seen_bytes = 8 if major * 10 + minor >= 2 and major < 1000 and minor < 1000 else 4
        body = data[12 + seen_bytes :]
        if len(body) % 4:
            raise DarknetError(f"the weights body is {len(body)} bytes, not a whole number of float32")
        self.floats = np.frombuffer(body, np.float32)

    @property
    def available(self) -> int:
        return self.pos if self.rng is not None else len(self.floats)

    def take(self, count: int, where: str, fan_in: int = 0) -> np.ndarray:
        if self.rng is not None:  # kernels scaled by fan-in so activations stay finite; the rest positive
            self.pos += count
            if fan_in:
                return self.rng.normal(0, (1 / fan_in) ** 0.5, count).astype(np.float32)
            return self.rng.uniform(0.5, 1.5, count).astype(np.float32)
        end = self.pos + count
        if end > len(self.floats):
            raise DarknetError(
                f"{where}: the weights file ends early: it holds {len(self.floats)} floats, the cfg needs "
                "more"
            )
        out = self.floats[self.pos : end]
        self.pos = end
        return out


def convert(cfg_text: str, weights: bytes | None, input_size: tuple[int, int] | None = None) -> Conversion:
    """Build the ONNX graph for a Darknet YOLO. `input_size` (w, h, multiples of 32) overrides the cfg's.

    `weights=None` fills the graph with random weights (shape tests; `weights_floats` then says how many
    floats a real weights file for this cfg must hold)."""
    from onnx import TensorProto, helper

    sections = parse_cfg(cfg_text)
    net = sections[0]
    width, height = input_size or (net.int("width"), net.int("height"))
    channels = net.int("channels", 3)
    if width % 32 or height % 32 or width <= 0 or height <= 0:
        raise DarknetError(f"input size {width}x{height}: both must be positive multiples of 32")
    w = _Weights(weights)
    g = _Builder()
    shapes: list[LayerShape] = []
    outputs: list[str] = []  # each layer's tensor
    heads: list[tuple[str, int]] = []  # (decoded tensor, boxes)
    classes: set[int] = set()
    cur, c, h, wd = INPUT_NAME, channels, height, width
    for index, sec in enumerate(sections[1:]):
        where = f"layer {index} [{sec.kind}] (cfg line {sec.line})"
        if sec.kind in {"convolutional", "conv"}:
            cur, c, h, wd = _conv(g, w, sec, cur, c, h, wd, where)
        elif sec.kind in {"maxpool", "max"}:
            cur, h, wd = _maxpool(g, sec, cur, h, wd)
        elif sec.kind == "upsample":
            stride = sec.int("stride", 2)
            scales = g.const("scales", np.array([1, 1, stride, stride], np.float32))
            cur = g.op(
                "Resize", [cur, "", scales], "upsample",
                mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor",
            )  # fmt: skip
            h, wd = h * stride, wd * stride
        elif sec.kind == "route":
            cur, c, h, wd = _route(g, sec, index, outputs, shapes, where)
        elif sec.kind == "shortcut":
            src = _absolute(sec.int("from"), index, where)
            if (shapes[src].channels, shapes[src].height, shapes[src].width) != (c, h, wd):
                raise DarknetError(f"{where}: shortcut from layer {src} has another shape")
            added = g.op("Add", [cur, outputs[src]], "shortcut")
            cur = _activate(g, added, sec.get("activation", "linear"), where)
        elif sec.kind in {"yolo", "region"}:
            if sec.kind == "region":
                raise DarknetError(f"{where}: [region] (YOLOv2) heads are not supported; use yolov3/v4 cfgs")
            decoded, n, num_classes = _yolo(g, sec, cur, c, h, wd, (width, height), where)
            heads.append((decoded, n))
            classes.add(num_classes)
        elif sec.kind == "dropout":
            pass  # identity at inference
        else:
            raise DarknetError(f"{where}: unsupported layer type")
        outputs.append(cur)
        shapes.append(LayerShape(index, sec.kind, c, h, wd))
    if not heads:
        raise DarknetError("the cfg has no [yolo] layer: not a YOLO detector")
    if len(classes) != 1:
        raise DarknetError(f"the yolo heads disagree on the number of classes: {sorted(classes)}")
    if w.pos != w.available:
        raise DarknetError(
            f"the weights file holds {w.available} floats but the cfg uses {w.pos}: "
            "the cfg does not match these weights"
        )
    final = g.op("Concat", [d for d, _ in heads], "detections", axis=1)
    g.nodes.append(helper.make_node("Identity", [final], [OUTPUT_NAME], name=OUTPUT_NAME))
    num_classes = classes.pop()
    total = sum(n for _, n in heads)
    graph = helper.make_graph(
        g.nodes,
        "darknet-yolo",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", channels, height, width])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", total, 5 + num_classes])],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="argus")
    model.ir_version = 8  # readable by every onnxruntime >= 1.10
    return Conversion(model, shapes, (width, height), num_classes, total, w.pos)


def _absolute(ref: int, index: int, where: str) -> int:
    src = index + ref if ref < 0 else ref
    if not 0 <= src < index:
        raise DarknetError(f"{where}: refers to layer {ref}, which is not an earlier layer")
    return src


def _conv(
    g: _Builder, w: _Weights, sec: Section, x: str, c: int, h: int, wd: int, where: str
) -> tuple[str, int, int, int]:
    filters, size, stride = sec.int("filters"), sec.int("size", 1), sec.int("stride", 1)
    groups = sec.int("groups", 1)
    pad = size // 2 if sec.int("pad", 0) else sec.int("padding", 0)
    if c % groups or filters % groups:
        raise DarknetError(f"{where}: {c} channels / {filters} filters do not split into {groups} groups")
    fan_in = (c // groups) * size * size
    out_h, out_w = (h + 2 * pad - size) // stride + 1, (wd + 2 * pad - size) // stride + 1
    if out_h <= 0 or out_w <= 0:
        raise DarknetError(f"{where}: the input {wd}x{h} is too small for this convolution")
    if sec.int("batch_normalize", 0):
        bias, gamma, mean, var = (w.take(filters, where) for _ in range(4))
        kernel = w.take(filters * fan_in, where, fan_in).reshape(filters, c // groups, size, size)
        factor = gamma / np.sqrt(var + BN_EPS)
        kernel = kernel * factor[:, None, None, None]
        bias = bias - mean * factor
    else:
        bias = w.take(filters, where)
        kernel = w.take(filters * fan_in, where, fan_in).reshape(filters, c // groups, size, size)
    y = g.op(
        "Conv",
        [x, g.const("w", kernel.astype(np.float32)), g.const("b", bias.astype(np.float32))],
        "conv",
        kernel_shape=[size, size], strides=[stride, stride], pads=[pad] * 4, group=groups,
    )  # fmt: skip
    return _activate(g, y, sec.get("activation", "logistic"), where), filters, out_h, out_w


def _activate(g: _Builder, x: str, activation: str, where: str) -> str:
    if activation == "linear":
        return x
    if activation == "leaky":
        return g.op("LeakyRelu", [x], "leaky", alpha=0.1)
    if activation == "relu":
        return g.op("Relu", [x])
    if activation == "logistic":
        return g.op("Sigmoid", [x])
    if activation == "mish":
        return g.op("Mul", [x, g.op("Tanh", [g.op("Softplus", [x])])], "mish")
    raise DarknetError(f"{where}: unsupported activation {activation!r}")


def _maxpool(g: _Builder, sec: Section, x: str, h: int, wd: int) -> tuple[str, int, int]:
    size = sec.int("size", 1)
    stride = sec.int("stride", size)
    padding = sec.int("padding", size - 1)
    # darknet pads padding//2 before and the rest after (the stride-1 pools of yolov3-tiny pad right/bottom)
    before, after = padding // 2, padding - padding // 2
    pads = [before, before, after, after]
    y = g.op("MaxPool", [x], "maxpool", kernel_shape=[size, size], strides=[stride, stride], pads=pads)
    return y, (h + padding - size) // stride + 1, (wd + padding - size) // stride + 1


def _route(
    g: _Builder, sec: Section, index: int, outputs: list[str], shapes: list[LayerShape], where: str
) -> tuple[str, int, int, int]:
    sources = [_absolute(r, index, where) for r in sec.ints("layers")]
    groups, group_id = sec.int("groups", 1), sec.int("group_id", 0)
    if len({(shapes[s].height, shapes[s].width) for s in sources}) != 1:
        dims = [f"{shapes[s].width}x{shapes[s].height}" for s in sources]
        raise DarknetError(f"{where}: routed layers differ in size ({', '.join(dims)})")
    parts, channels = [], 0
    for s in sources:
        part, c = outputs[s], shapes[s].channels
        if groups > 1:
            if c % groups:
                raise DarknetError(f"{where}: layer {s}'s {c} channels do not split into {groups} groups")
            c //= groups
            starts, ends = (
                g.const("start", np.array([group_id * c])),
                g.const("end", np.array([(group_id + 1) * c])),
            )
            part = g.op("Slice", [part, starts, ends, g.const("axis", np.array([1]))], "group")
        parts.append(part)
        channels += c
    out = parts[0] if len(parts) == 1 else g.op("Concat", parts, "route", axis=1)
    return out, channels, shapes[sources[0]].height, shapes[sources[0]].width


def _yolo(
    g: _Builder, sec: Section, x: str, c: int, h: int, wd: int, size: tuple[int, int], where: str
) -> tuple[str, int, int]:
    """Decode one head in the graph: [B, A*(5+C), H, W] -> [B, A*H*W, 5+C] with boxes in input pixels."""
    classes = sec.int("classes")
    anchors = np.array(sec.ints("anchors") if "anchors" in sec.options else [], np.float32).reshape(-1, 2)
    mask = sec.ints("mask") if "mask" in sec.options else list(range(len(anchors)))
    if any(m >= len(anchors) for m in mask):
        raise DarknetError(f"{where}: mask {mask} refers past the {len(anchors)} anchors")
    a = len(mask)
    if c != a * (5 + classes):
        raise DarknetError(
            f"{where}: the head gets {c} channels, expected {a} x (5 + {classes}) = {a * (5 + classes)}"
        )
    scale_xy = sec.float("scale_x_y", 1.0)
    cells = h * wd
    n = a * cells
    y = g.op("Reshape", [x, g.const("shape", np.array([0, a, 5 + classes, cells]))], "head")
    y = g.op("Transpose", [y], "head", perm=[0, 1, 3, 2])
    y = g.op("Reshape", [y, g.const("shape", np.array([0, n, 5 + classes]))], "head")
    axis = g.const("axis", np.array([2]))

    def cols(start: int, end: int) -> str:
        return g.op("Slice", [y, g.const("start", np.array([start])), g.const("end", np.array([end])), axis])

    gy, gx = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(wd, dtype=np.float32), indexing="ij")
    grid = np.tile(np.stack([gx.ravel(), gy.ravel()], 1), (a, 1))  # [A*H*W, 2] as (x, y)
    stride = np.array([size[0] / wd, size[1] / h], np.float32)
    xy = g.op("Sigmoid", [cols(0, 2)])
    if scale_xy != 1.0:
        xy = g.op("Mul", [xy, g.const("scale", np.array(scale_xy, np.float32))])
        grid = grid - (scale_xy - 1) / 2
    xy = g.op("Mul", [g.op("Add", [xy, g.const("grid", grid.astype(np.float32))]), g.const("stride", stride)])
    wh = g.op("Mul", [g.op("Exp", [cols(2, 4)]), g.const("anchors", np.repeat(anchors[mask], cells, axis=0))])
    rest = g.op("Sigmoid", [cols(4, 5 + classes)])
    return g.op("Concat", [xy, wh, rest], "decoded", axis=2), n, classes
