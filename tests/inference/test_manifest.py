"""ModelSpec manifests: parsing, field-naming errors, checks against the real graph, the built-in VAD."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.inference.builtin_vad import NAME, ensure_builtin_vad
from app.inference.manifest import ManifestError, ModelSpec, check_model
from tests.support.onnx_graphs import linear_model, yolo_model


def detector(path: Path, **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {"name": "det", "kind": "detector", "path": str(path), "layout": "yolov8",
                               "class_names": ["a", "b"], "input_size": [32, 32]}  # fmt: skip
    data.update(overrides)
    return data


def error_field(data: object, base: Path | None = None) -> str | None:
    with pytest.raises(ManifestError) as err:
        check_model(ModelSpec.parse(data, base))
    return err.value.field


class TestParse:
    def test_relative_path_is_next_to_the_manifest(self, tmp_path: Path) -> None:
        yolo_model(tmp_path / "m" / "y.onnx")
        (tmp_path / "m" / "y.json").write_text(json.dumps(detector(Path("y.onnx"))))
        spec = ModelSpec.from_file(tmp_path / "m" / "y.json")
        assert spec.path == (tmp_path / "m" / "y.onnx").resolve()
        resolved, info = check_model(spec)
        assert resolved.input_shape == (None, 3, 32, 32) and resolved.dynamic_batch
        assert resolved.item_shape == (3, 32, 32) and info.name == "images"

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"layout": None}, "layout"),
            ({"class_names": []}, "class_names"),
            ({"kind": "toaster"}, "kind"),
            ({"name": "UPPER"}, "name"),
            ({"normalization": {"std": [0.0]}}, "normalization"),
            ({"surprise": 1}, "surprise"),
        ],
    )
    def test_invalid_fields_are_named(self, tmp_path: Path, overrides: dict[str, object], field: str) -> None:
        with pytest.raises(ManifestError) as err:
            ModelSpec.parse(detector(tmp_path / "y.onnx", **overrides))
        assert err.value.field == field

    def test_unreadable_manifest(self, tmp_path: Path) -> None:
        (tmp_path / "bad.json").write_text("{nope")
        with pytest.raises(ManifestError) as err:
            ModelSpec.from_file(tmp_path / "bad.json")
        assert err.value.field == "manifest_path"


class TestCheckAgainstGraph:
    def test_class_count_must_match_the_output(self, tmp_path: Path) -> None:
        path = yolo_model(tmp_path / "y.onnx", classes=2)
        assert error_field(detector(path, class_names=["a", "b", "c"])) == "class_names"
        v5 = yolo_model(tmp_path / "v5.onnx", classes=2, layout="yolov5")
        check_model(ModelSpec.parse(detector(v5, layout="yolov5")))
        assert error_field(detector(v5, layout="yolov5", class_names=["a"])) == "class_names"

    def test_shapes_sizes_and_names_must_match(self, tmp_path: Path) -> None:
        path = yolo_model(tmp_path / "y.onnx")
        assert error_field(detector(path, input_size=[64, 32])) == "input_size"
        assert error_field(detector(path, input_shape=[None, 1, 32, 32])) == "input_shape"
        assert error_field(detector(path, input_shape=[None, 3, 32])) == "input_shape"
        assert error_field(detector(path, input_name="data")) == "input_name"
        pinned, _ = check_model(ModelSpec.parse(detector(path, input_shape=[1, 3, 32, 32])))
        assert pinned.batch_dim == 1  # the manifest may pin a dim the graph leaves dynamic

    def test_a_detector_needs_a_three_dim_output(self, tmp_path: Path) -> None:
        path = linear_model(tmp_path / "l.onnx")
        assert error_field(detector(path)) == "layout"

    def test_missing_or_garbage_files_name_the_path(self, tmp_path: Path) -> None:
        assert error_field(detector(tmp_path / "absent.onnx")) == "path"
        (tmp_path / "junk.onnx").write_bytes(b"\x00\x01garbage")
        assert error_field(detector(tmp_path / "junk.onnx")) == "path"


class TestBuiltinVad:
    def test_written_once_with_its_manifest(self, tmp_path: Path) -> None:
        spec = ensure_builtin_vad(tmp_path)
        manifest = tmp_path / f"{NAME}.json"
        assert spec.path.is_file() and manifest.is_file()
        assert json.loads(manifest.read_text())["path"] == f"{NAME}.onnx"  # relocatable with its folder
        mtime = spec.path.stat().st_mtime_ns
        ensure_builtin_vad(tmp_path)
        assert spec.path.stat().st_mtime_ns == mtime
        resolved, _ = check_model(ModelSpec.from_file(manifest))
        assert resolved.input_shape == (None, 2, 64, 112) and resolved.kind == "vad"

    def test_a_damaged_manifest_is_rebuilt(self, tmp_path: Path) -> None:
        ensure_builtin_vad(tmp_path)
        (tmp_path / f"{NAME}.json").write_text("garbage")
        ensure_builtin_vad(tmp_path)
        assert ModelSpec.from_file(tmp_path / f"{NAME}.json").name == NAME
