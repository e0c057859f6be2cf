"""Darknet -> ONNX: layer shapes, the weights-size check, the in-graph head decode, and real boxes.

The real-model tests use the official yolov3-tiny COCO weights (the `coco` extra), converted once per
session (tests/conftest.py), and hand-labelled real frames (tests/support/labels/frames.json).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, shape_inference

from app.analyzers.detector import Detector, DetectorOptions
from app.inference.darknet import DarknetError, convert, parse_cfg
from app.inference.install import COCO_NAMES, KNOWN, InstallError, install_darknet, read_names, sha256_of
from app.inference.manifest import ModelSpec
from app.inference.pool import ResourcePool
from app.stream.frame import Frame
from tests.support.coco import labelled_frames, match, read_frame, require_coco

# yolov4-tiny.cfg (AlexeyAB), trimmed of training keys: grouped routes, scale_x_y, two heads.
YOLOV4_TINY = (
    """
[net]
width=416
height=416
channels=3
[convolutional]
batch_normalize=1
filters=32
size=3
stride=2
pad=1
activation=leaky
[convolutional]
batch_normalize=1
filters=64
size=3
stride=2
pad=1
activation=leaky
"""
    + "".join(
        f"""
[convolutional]
batch_normalize=1
filters={f}
size=3
stride=1
pad=1
activation=leaky
[route]
layers=-1
groups=2
group_id=1
[convolutional]
batch_normalize=1
filters={f // 2}
size=3
stride=1
pad=1
activation=leaky
[convolutional]
batch_normalize=1
filters={f // 2}
size=3
stride=1
pad=1
activation=leaky
[route]
layers = -1,-2
[convolutional]
batch_normalize=1
filters={f}
size=1
stride=1
pad=1
activation=leaky
[route]
layers = -6,-1
[maxpool]
size=2
stride=2
"""
        for f in (64, 128, 256)
    )
    + """
[convolutional]
batch_normalize=1
filters=512
size=3
stride=1
pad=1
activation=leaky
[convolutional]
batch_normalize=1
filters=256
size=1
stride=1
pad=1
activation=leaky
[convolutional]
batch_normalize=1
filters=512
size=3
stride=1
pad=1
activation=leaky
[convolutional]
size=1
stride=1
pad=1
filters=255
activation=linear
[yolo]
mask = 3,4,5
anchors = 10,14,  23,27,  37,58,  81,82,  135,169,  344,319
classes=80
num=6
scale_x_y = 1.05
[route]
layers = -4
[convolutional]
batch_normalize=1
filters=128
size=1
stride=1
pad=1
activation=leaky
[upsample]
stride=2
[route]
layers = -1, 23
[convolutional]
batch_normalize=1
filters=256
size=3
stride=1
pad=1
activation=leaky
[convolutional]
size=1
stride=1
pad=1
filters=255
activation=linear
[yolo]
mask = 1,2,3
anchors = 10,14,  23,27,  37,58,  81,82,  135,169,  344,319
classes=80
num=6
scale_x_y = 1.05
"""
)

# yolov3-tiny at 416: (kind, channels, side) per darknet layer, as Darknet prints it when it loads the cfg
YOLOV3_TINY_LAYERS = [
    ("convolutional", 16, 416), ("maxpool", 16, 208), ("convolutional", 32, 208), ("maxpool", 32, 104),
    ("convolutional", 64, 104), ("maxpool", 64, 52), ("convolutional", 128, 52), ("maxpool", 128, 26),
    ("convolutional", 256, 26), ("maxpool", 256, 13), ("convolutional", 512, 13), ("maxpool", 512, 13),
    ("convolutional", 1024, 13), ("convolutional", 256, 13), ("convolutional", 512, 13),
    ("convolutional", 255, 13), ("yolo", 255, 13), ("route", 256, 13), ("convolutional", 128, 13),
    ("upsample", 128, 26), ("route", 384, 26), ("convolutional", 256, 26), ("convolutional", 255, 26),
    ("yolo", 255, 26),
]  # fmt: skip


def weights_file(floats: int, seed: int = 0) -> bytes:
    header = np.array([0, 2, 5], np.int32).tobytes() + np.array([0], np.int64).tobytes()
    return header + np.random.default_rng(seed).uniform(0.01, 0.1, floats).astype(np.float32).tobytes()


def inferred_shapes(model: onnx.ModelProto, names: list[str]) -> dict[str, list[int | str]]:
    """ONNX's own shape inference for the named tensors (independent of the converter's bookkeeping)."""
    inferred = shape_inference.infer_shapes(model, strict_mode=True)
    out: dict[str, list[int | str]] = {}
    for v in list(inferred.graph.value_info) + list(inferred.graph.output):
        if v.name in names:
            out[v.name] = [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]
    return out


# -- the converter on cfgs --------------------------------------------------------------------------


def test_yolov4_tiny_shapes_weights_count_and_onnx_shape_inference() -> None:
    conv = convert(YOLOV4_TINY, None)
    shapes = {(s.index, s.kind): (s.channels, s.height, s.width) for s in conv.layers}
    assert shapes[(0, "convolutional")] == (32, 208, 208)
    assert shapes[(3, "route")] == (32, 104, 104)  # the second half of 64 channels (groups=2, group_id=1)
    assert shapes[(8, "route")] == (128, 104, 104)  # the block's input and its output, concatenated
    assert shapes[(34, "route")] == (384, 26, 26)
    assert shapes[(30, "yolo")] == (255, 13, 13)
    assert shapes[(37, "yolo")] == (255, 26, 26)
    assert (conv.num_boxes, conv.num_classes, conv.input_size) == (3 * (13 * 13 + 26 * 26), 80, (416, 416))
    # 6,062,814 parameters: the official yolov4-tiny.weights is 24,251,276 bytes = 20-byte header + 4 x that
    assert conv.weights_floats == 6_062_814
    onnx.checker.check_model(conv.model, full_check=True)
    output = inferred_shapes(conv.model, ["output"])["output"]
    assert output == ["batch", 2535, 85]
    good = convert(YOLOV4_TINY, weights_file(conv.weights_floats))
    assert good.weights_floats == conv.weights_floats


def test_weights_must_match_the_cfg_exactly() -> None:
    n = convert(YOLOV4_TINY, None).weights_floats
    with pytest.raises(DarknetError, match=f"holds {n + 1} floats but the cfg uses {n}"):
        convert(YOLOV4_TINY, weights_file(n + 1))
    with pytest.raises(DarknetError, match="ends early"):
        convert(YOLOV4_TINY, weights_file(n - 1))
    with pytest.raises(DarknetError, match="too short"):
        convert(YOLOV4_TINY, b"\0" * 8)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("classes=80", "classes=20"), "expected 3 x \\(5 \\+ 20\\)"),
        (("layers = -1, 23", "layers = -1, 40"), "not an earlier layer"),
        (("layers = -1, 23", "layers = -1, 25"), "routed layers differ in size"),
        (("activation=leaky", "activation=swish"), "unsupported activation 'swish'"),
        (("[upsample]", "[reorg]"), "unsupported layer type"),
        (("width=416", "width=400"), "multiples of 32"),
    ],
)
def test_bad_cfgs_are_refused_naming_the_layer(edit: tuple[str, str], message: str) -> None:
    with pytest.raises(DarknetError, match=message):
        convert(
            YOLOV4_TINY.replace(*edit, 1) if edit[0] != "classes=80" else YOLOV4_TINY.replace(*edit), None
        )


def test_cfg_syntax_errors() -> None:
    with pytest.raises(DarknetError, match="starts with a \\[net\\]"):
        parse_cfg("[convolutional]\nfilters=1\n")
    with pytest.raises(DarknetError, match="line 2"):
        parse_cfg("[net]\nthis is not a cfg\n")


def test_heads_decode_in_graph_like_darknet() -> None:
    """The decoded output equals Darknet's formulas applied to the raw head (scale_x_y = 1.05 included)."""
    conv = convert(YOLOV4_TINY, None)
    model = conv.model
    raw = [n.input[0] for n in model.graph.node if n.op_type == "Reshape" and n.output[0].startswith("head")]
    raw = raw[::2]  # the first Reshape of each head takes the conv output
    for name in raw:
        model.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString())
    x = np.random.default_rng(1).uniform(0, 1, (2, 3, 416, 416)).astype(np.float32)
    decoded, *heads = session.run(None, {"images": x})
    anchors = np.array([10, 14, 23, 27, 37, 58, 81, 82, 135, 169, 344, 319], np.float32).reshape(-1, 2)
    expected = []
    for head, mask in zip(heads, ([3, 4, 5], [1, 2, 3]), strict=True):
        b, _, h, w = head.shape
        t = head.reshape(b, 3, 85, h, w)
        sig = 1 / (1 + np.exp(-t))
        gx, gy = np.meshgrid(np.arange(w), np.arange(h))
        cx = (gx + sig[:, :, 0] * 1.05 - 0.025) * (416 / w)
        cy = (gy + sig[:, :, 1] * 1.05 - 0.025) * (416 / h)
        bw = np.exp(t[:, :, 2]) * anchors[mask][None, :, 0, None, None]
        bh = np.exp(t[:, :, 3]) * anchors[mask][None, :, 1, None, None]
        rows = np.concatenate([np.stack([cx, cy, bw, bh], 2), sig[:, :, 4:]], 2)  # [B, A, 85, H, W]
        expected.append(rows.transpose(0, 1, 3, 4, 2).reshape(b, -1, 85))
    np.testing.assert_allclose(decoded, np.concatenate(expected, 1), rtol=1e-4, atol=1e-3)


# -- the real model ---------------------------------------------------------------------------------


def test_yolov3_tiny_layers_match_darknet(coco_models_dir: Path) -> None:
    cfg, weights = require_coco()
    conv = convert(cfg.read_text(), weights.read_bytes())
    assert [(s.kind, s.channels, s.height) for s in conv.layers] == YOLOV3_TINY_LAYERS
    assert all(s.height == s.width for s in conv.layers)
    assert conv.weights_floats == (35_434_956 - 20) // 4
    out = inferred_shapes(conv.model, ["output"])["output"]
    assert out == ["batch", 2535, 85]


def test_shipped_files_are_the_official_ones() -> None:
    cfg, weights = require_coco()
    assert sha256_of(weights.read_bytes()) == KNOWN["yolov3-tiny"].weights_sha256
    assert read_names(cfg.parent / "coco.names") == COCO_NAMES


async def detect(
    pool: ResourcePool, image: np.ndarray, model: str = "yolov3-tiny"
) -> tuple[np.ndarray, list[str]]:
    det = Detector(DetectorOptions.parse({"model": model}), pool)
    h, w = image.shape[:2]
    frame = Frame(1, 0, 0.0, image, w, h)
    tensor, box = det.prepare(image)
    found = det.postprocess((await pool.infer(model, tensor))[0], box, frame)
    keep = found.scores >= det.options.min_confidence
    return found.boxes[keep], [det.class_names[c] for c in found.class_ids[keep]]


# Measured on the 5 labelled frames (36 objects) at the detector's default min_confidence 0.4 and NMS 0.45:
# recall 0.806 (29/36), precision 0.906 (29/32). The misses are people merged with a neighbour at 13x13
# (vtest 100, 500), a half-hidden person (700) and bikes.mp4's blurred car and parked motorbike; the false
# positives: a duplicate person box (vtest 100) and the cyclist's bicycle/motorbike confusions (bikes).
# The thresholds leave two objects of slack each way for onnxruntime/OpenCV resize differences; the cfg
# as shipped (anchor mask 0,1,2 on the small head) gives boxes a third too narrow and fails both.
MIN_RECALL, MIN_PRECISION = 0.75, 0.85


async def test_real_boxes_on_labelled_frames(coco_models_dir: Path) -> None:
    async with ResourcePool(coco_models_dir, builtin_vad=False, max_wait_ms=1, calibrate=False) as pool:
        tp = fp = fn = 0
        for truth in labelled_frames():
            boxes, labels = await detect(pool, read_frame(truth.video, truth.frame))
            a, b, c = match(boxes, labels, truth)
            tp, fp, fn = tp + a, fp + b, fn + c
    recall, precision = tp / (tp + fn), tp / (tp + fp)
    assert recall >= MIN_RECALL, (tp, fp, fn)
    assert precision >= MIN_PRECISION, (tp, fp, fn)


async def test_the_shipped_cfg_unfixed_would_fail_the_fixture(coco_models_dir: Path, tmp_path: Path) -> None:
    """Why the catalogue fixes the anchor mask: converted as shipped, recall on the fixture collapses."""
    cfg, weights = require_coco()
    spec = install_darknet(tmp_path, "raw-cfg", cfg, weights)
    async with ResourcePool(tmp_path, builtin_vad=False, max_wait_ms=1, calibrate=False) as pool:
        tp = fn = 0
        for truth in labelled_frames():
            boxes, labels = await detect(pool, read_frame(truth.video, truth.frame), spec.name)
            a, _, c = match(boxes, labels, truth)
            tp, fn = tp + a, fn + c
    assert tp / (tp + fn) < MIN_RECALL


# -- installing -------------------------------------------------------------------------------------


def test_install_writes_a_registrable_model(coco_models_dir: Path) -> None:
    spec = ModelSpec.from_file(coco_models_dir / "yolov3-tiny.json")
    assert spec.layout == "yolov5" and spec.class_names == COCO_NAMES and spec.input_size == (416, 416)
    assert spec.path == (coco_models_dir / "yolov3-tiny.onnx").resolve()
    assert (coco_models_dir / "yolov3-tiny.json").read_text().count('"path": "yolov3-tiny.onnx"') == 1


def test_install_refuses_bad_checksums_names_and_taken_names(tmp_path: Path) -> None:
    cfg, weights = require_coco()
    with pytest.raises(InstallError, match="does not match the expected"):
        install_darknet(tmp_path, "m", cfg, weights, sha256="0" * 64)
    with pytest.raises(InstallError, match="80 classes and 3 names"):
        install_darknet(tmp_path, "m", cfg, weights, class_names=("a", "b", "c"))
    with pytest.raises(InstallError, match="bad model name"):
        install_darknet(tmp_path, "../m", cfg, weights)
    install_darknet(tmp_path, "m", cfg, weights, input_size=(320, 320))
    assert ModelSpec.from_file(tmp_path / "m.json").input_size == (320, 320)
    with pytest.raises(InstallError, match="already installed"):
        install_darknet(tmp_path, "m", cfg, weights)
    assert not list(tmp_path.glob("*.tmp"))


def test_cli_installs_yolov3_tiny(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.__main__ import main

    require_coco()
    monkeypatch.setenv("ARGUS_DATA_DIR", str(tmp_path))
    assert main(["models", "install", "yolov3-tiny"]) == 0
    assert "installed yolov3-tiny" in capsys.readouterr().out
    assert (tmp_path / "models" / "yolov3-tiny.onnx").is_file()
    assert main(["models", "install", "yolov3-tiny"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["models", "install", "other", "--cfg", "x.cfg"]) == 2
    assert main(["models", "install", "nope"]) == 2
    assert "no built-in model 'nope'" in capsys.readouterr().err
