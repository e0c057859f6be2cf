"""ModelSpec: what a model is and how to feed it, read from a JSON manifest next to the ONNX file.

The pool is model-agnostic: it only needs the input (name, shape, dtype) to batch. Analyzers read the
rest (input size, normalisation, output layout, class names) to do their own pre- and post-processing.
A manifest that does not match its ONNX file is rejected at registration (`check_model`), never at run
time, with a `ManifestError` naming the offending field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.kit.files import FileRefused, read_regular_file

ModelKind = Literal["vad", "detector", "score"]
DetectorLayout = Literal["yolov8", "yolov5"]  # [1, 4+C, N] / [1, N, 5+C]
ChannelOrder = Literal["rgb", "bgr", "gray"]
Dim = int | None  # None = dynamic (a dim_param or a non-positive dim_value in the graph)

MANIFEST_SUFFIX = ".json"
MANIFEST_MAX_BYTES = 1_048_576
MODEL_MAX_BYTES = 2**31  # protobuf's own limit for one ONNX file (larger models keep external data)
MANIFEST_UNUSABLE = "not a usable manifest: a regular JSON file inside ARGUS_MODELS_DIR, at most 1 MiB"
MODEL_UNUSABLE = "not a usable model file: a regular ONNX file inside ARGUS_MODELS_DIR, at most 2 GiB"


class ManifestError(ValueError):
    """A manifest or its model file is wrong; `field` names what (dotted path), for a 422 body."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.message = message
        self.field = field


class Normalization(BaseModel):
    """input = (pixel * scale - mean) / std, per channel, in `channel_order`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scale: float = Field(1 / 255, gt=0)
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    channel_order: ChannelOrder = "rgb"

    @model_validator(mode="after")
    def _std_positive(self) -> Normalization:
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be > 0")
        return self


class ModelSpec(BaseModel):
    """One model. `input_shape` includes the batch dim; it is filled in from the graph when omitted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    kind: ModelKind
    path: Path
    description: str = ""
    input_name: str | None = None  # default: the graph's first input
    input_shape: tuple[Dim, ...] | None = None
    input_size: tuple[int, int] | None = None  # (width, height) the analyzer resizes to
    normalization: Normalization = Normalization()
    layout: DetectorLayout | None = None
    class_names: tuple[str, ...] = ()
    # Cap on cross-camera batches for this model (default: the pool's). On CPU, big images batch
    # poorly past a few frames and the arena grows with the batch; 2-4 is often the sweet spot there.
    max_batch: int | None = Field(None, ge=1, le=256)

    @model_validator(mode="after")
    def _detector_fields(self) -> ModelSpec:
        if self.kind == "detector":
            if self.layout is None:
                raise ValueError("layout is required for a detector (yolov8 or yolov5)")
            if not self.class_names:
                raise ValueError("class_names is required for a detector")
        if self.input_size is not None and min(self.input_size) < 1:
            raise ValueError("input_size must be positive (width, height)")
        return self

    # -- derived ------------------------------------------------------------------------------------

    @property
    def batch_dim(self) -> Dim:
        """None when the graph takes any batch size, else its fixed batch (usually 1)."""
        return self.input_shape[0] if self.input_shape else None

    @property
    def dynamic_batch(self) -> bool:
        return self.batch_dim is None

    @property
    def item_shape(self) -> tuple[Dim, ...]:
        """The shape of ONE item, as `pool.infer` takes it (no batch dim)."""
        return tuple(self.input_shape[1:]) if self.input_shape else ()

    # -- (de)serialisation --------------------------------------------------------------------------

    @classmethod
    def parse(cls, data: Any, base_dir: Path | None = None) -> ModelSpec:
        """Validate a manifest dict; a relative `path` is taken relative to `base_dir`."""
        if not isinstance(data, dict):
            raise ManifestError("a manifest must be a JSON object")
        try:
            spec = cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"]) or None
            if loc is None and err["type"] == "value_error":
                loc = _field_in_message(str(err["msg"]))
            raise ManifestError(str(err["msg"]).removeprefix("Value error, "), loc) from None
        if base_dir is not None and not spec.path.is_absolute():
            try:  # a NUL or an over-long name is a client's error, not a 500
                spec = spec.model_copy(update={"path": (base_dir / spec.path).resolve()})
            except (OSError, RuntimeError, ValueError):
                raise ManifestError(MODEL_UNUSABLE, "path") from None
        return spec

    @classmethod
    def from_file(cls, manifest: Path) -> ModelSpec:
        """Read a manifest (a regular file of at most MANIFEST_MAX_BYTES: a pipe or device in the models
        folder must not hang the start) and resolve its relative `path` against its folder."""
        try:
            _, raw = read_regular_file(manifest, None, MANIFEST_MAX_BYTES)
        except FileRefused:
            raise ManifestError(f"{MANIFEST_UNUSABLE} ({manifest.name})", "manifest_path") from None
        return cls.parse(parse_json(raw, manifest.name), manifest.parent)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_defaults=False)

    def write(self, manifest: Path) -> None:
        """Write atomically, so a crash never leaves half a manifest to fail the next start."""
        manifest.parent.mkdir(parents=True, exist_ok=True)
        tmp = manifest.with_suffix(manifest.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        tmp.replace(manifest)


def parse_json(raw: bytes, name: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ManifestError(f"{name} is not valid JSON: {exc}", "manifest_path") from None


def _field_in_message(msg: str) -> str | None:
    for name in ("layout", "class_names", "input_size", "std"):
        if msg.removeprefix("Value error, ").startswith(name):
            return name
    return None


@dataclass(frozen=True, slots=True)
class TensorInfo:
    name: str
    shape: tuple[Dim, ...]
    dtype: str  # numpy dtype name


def _onnx_dtype(elem_type: int) -> str:
    from onnx import helper

    return str(helper.tensor_dtype_to_np_dtype(elem_type))


def _shape(value_info: Any) -> tuple[Dim, ...]:
    dims = value_info.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims)


def inspect_graph(path: Path) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """(inputs, outputs) of an ONNX file, initializers excluded. Raises ManifestError("path")."""
    import onnx

    if not path.is_file():
        raise ManifestError(f"no model file at {path}", "path")
    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(model)
    except Exception as exc:  # DecodeError, ValidationError, ...: all mean "not a usable ONNX file"
        msg = f"{path.name} is not a loadable ONNX model ({type(exc).__name__})"
        raise ManifestError(msg, "path") from None
    init = {i.name for i in model.graph.initializer}
    inputs = [
        TensorInfo(v.name, _shape(v), _onnx_dtype(v.type.tensor_type.elem_type))
        for v in model.graph.input
        if v.name not in init
    ]
    outputs = [
        TensorInfo(v.name, _shape(v), _onnx_dtype(v.type.tensor_type.elem_type)) for v in model.graph.output
    ]
    return inputs, outputs


def check_model(spec: ModelSpec) -> tuple[ModelSpec, TensorInfo]:
    """Check the manifest against its graph; return the spec with `input_shape`/`input_name` resolved."""
    inputs, outputs = inspect_graph(spec.path)
    if len(inputs) != 1:
        raise ManifestError(f"the pool serves single-input models; this one has {len(inputs)}", "path")
    info = inputs[0]
    if spec.input_name is not None and spec.input_name != info.name:
        raise ManifestError(f"the graph's input is {info.name!r}, not {spec.input_name!r}", "input_name")
    graph_shape = info.shape
    if spec.input_shape is not None:
        pairs = zip(graph_shape, spec.input_shape, strict=False)
        if len(spec.input_shape) != len(graph_shape) or any(
            g is not None and m is not None and g != m for g, m in pairs
        ):
            raise ManifestError(
                f"manifest says {list(spec.input_shape)}, the graph takes {list(graph_shape)}", "input_shape"
            )
        # Keep the more precise of the two (the manifest may pin a dim the graph leaves dynamic).
        shape = tuple(m if m is not None else g for g, m in zip(graph_shape, spec.input_shape, strict=True))
    else:
        shape = graph_shape
    if not shape:
        raise ManifestError("the input has no batch dimension", "input_shape")
    if spec.input_size is not None and len(shape) == 4:
        h, w = shape[2], shape[3]
        if (w is not None and w != spec.input_size[0]) or (h is not None and h != spec.input_size[1]):
            raise ManifestError(
                f"input_size (w, h) = {list(spec.input_size)} but the graph takes {w}x{h}", "input_size"
            )
    for out in outputs:
        if out.shape and out.shape[0] is not None and shape[0] is None and out.shape[0] != 1:
            raise ManifestError(f"output {out.name!r} has no batch dimension first", "path")
    if spec.kind == "detector":
        _check_detector(spec, outputs)
    resolved = spec.model_copy(update={"input_name": info.name, "input_shape": shape})
    return resolved, TensorInfo(info.name, shape, info.dtype)


def _check_detector(spec: ModelSpec, outputs: list[TensorInfo]) -> None:
    out = outputs[0].shape
    if len(out) != 3:
        msg = f"a {spec.layout} detector returns [1, ., .]; this one returns {list(out)}"
        raise ManifestError(msg, "layout")
    n_cls = len(spec.class_names)
    if spec.layout == "yolov8" and out[1] is not None and out[1] != 4 + n_cls:
        raise ManifestError(
            f"yolov8 output is [1, 4+C, N]: dim 1 is {out[1]}, expected {4 + n_cls} for {n_cls} classes",
            "class_names",
        )
    if spec.layout == "yolov5" and out[2] is not None and out[2] != 5 + n_cls:
        raise ManifestError(
            f"yolov5 output is [1, N, 5+C]: dim 2 is {out[2]}, expected {5 + n_cls} for {n_cls} classes",
            "class_names",
        )
