"""The default VAD model, built as an ONNX graph so Argus scores motion out of the box, offline.

Input `frames` [B, 2, H, W]: two consecutive grayscale frames scaled to [0, 1]. Output `score` [B]: the
motion energy, 100 * mean(relu(blur3x3(|f1 - f0|) - floor)). The 3x3 blur and the noise floor keep
sensor and compression noise at exactly zero on a still scene, so any score is real change; per-camera
normalisation (app/analyzers/normalizer.py) turns it into a z-score one threshold fits.
"""

from __future__ import annotations

import logging
from pathlib import Path

from app.inference.manifest import MANIFEST_SUFFIX, ManifestError, ModelSpec, Normalization

log = logging.getLogger("argus.inference")

NAME = "vad-motion"
VERSION = "motion-energy v1"
WIDTH, HEIGHT = 112, 64  # 16:9-ish, small: the score is a global energy, detail adds nothing
NOISE_FLOOR = 0.04  # ~10 grey levels after the blur


def build_model(width: int = WIDTH, height: int = HEIGHT, noise_floor: float = NOISE_FLOOR) -> bytes:
    """The serialised graph, dynamic batch."""
    import numpy as np
    from onnx import TensorProto, checker, helper, numpy_helper

    def const(name: str, value: object, dtype: type = np.int64) -> object:
        return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)

    nodes = [
        helper.make_node("Slice", ["frames", "c0", "c1", "ax1"], ["prev"]),
        helper.make_node("Slice", ["frames", "c1", "c2", "ax1"], ["cur"]),
        helper.make_node("Sub", ["cur", "prev"], ["diff"]),
        helper.make_node("Abs", ["diff"], ["absdiff"]),
        helper.make_node(
            "AveragePool", ["absdiff"], ["blur"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=0
        ),
        helper.make_node("Sub", ["blur", "floor"], ["above"]),
        helper.make_node("Relu", ["above"], ["energy"]),
        helper.make_node("ReduceMean", ["energy"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["mean", "hundred"], ["score"]),
    ]
    initializers = [
        const("c0", [0]),
        const("c1", [1]),
        const("c2", [2]),
        const("ax1", [1]),
        const("floor", noise_floor, np.float32),
        const("hundred", 100.0, np.float32),
    ]
    graph = helper.make_graph(
        nodes,
        "argus_vad_motion",
        [helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["batch", 2, height, width])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"])],
        initializer=initializers,  # type: ignore[arg-type]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="argus")
    model.ir_version = 8  # readable by every onnxruntime >= 1.14
    checker.check_model(model)
    return model.SerializeToString()


def builtin_spec(models_dir: Path) -> ModelSpec:
    return ModelSpec(
        name=NAME,
        kind="vad",
        path=models_dir / f"{NAME}.onnx",
        description=f"Argus built-in {VERSION}: two grey frames -> motion energy",
        input_name="frames",
        input_shape=(None, 2, HEIGHT, WIDTH),
        input_size=(WIDTH, HEIGHT),
        normalization=Normalization(scale=1 / 255, mean=(0.0,), std=(1.0,), channel_order="gray"),
    )


def ensure_builtin_vad(models_dir: Path) -> ModelSpec:
    """Write the model and its manifest under `models_dir` unless this version is already there."""
    spec = builtin_spec(models_dir)
    manifest = models_dir / f"{NAME}{MANIFEST_SUFFIX}"
    try:
        if spec.path.is_file() and ModelSpec.from_file(manifest).description == spec.description:
            return spec
    except ManifestError:
        pass  # missing or damaged: rebuild
    models_dir.mkdir(parents=True, exist_ok=True)
    tmp = spec.path.with_suffix(".onnx.tmp")
    tmp.write_bytes(build_model())
    tmp.replace(spec.path)
    spec.model_copy(update={"path": Path(spec.path.name)}).write(manifest)
    log.info("built-in VAD model written to %s", spec.path)
    return spec
