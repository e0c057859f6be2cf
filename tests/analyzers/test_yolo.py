"""YOLO pre/post-processing checked exactly, with outputs produced by real onnxruntime sessions."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from app.analyzers.yolo import Decoded, Letterbox, decode, iou_matrix, letterbox, nms, to_source, to_tensor
from tests.support.onnx_graphs import constant_detector


def run(model: object, size: tuple[int, int] = (64, 64)) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])  # type: ignore[attr-defined]
    x = np.zeros((1, 3, size[1], size[0]), np.float32)
    return session.run(None, {"images": x})[0][0]


# Four anchors, two classes. A and B overlap heavily (same class), C overlaps A but is class 1, D is weak.
ANCHORS = [
    # cx, cy, w, h, class 0, class 1
    (20, 20, 10, 10, 0.9, 0.1),  # A
    (21, 21, 10, 10, 0.8, 0.0),  # B: IoU with A = 81/119 = 0.68 -> suppressed
    (20, 20, 10, 10, 0.0, 0.7),  # C: same box as A but another class -> kept
    (50, 50, 8, 8, 0.05, 0.02),  # D: below min_confidence
]


class TestLetterbox:
    def test_wide_image_is_padded_top_and_bottom_with_grey(self) -> None:
        image = np.full((180, 320, 3), 255, np.uint8)

        boxed, box = letterbox(image, 64, 64)

        assert boxed.shape == (64, 64, 3)
        assert box == Letterbox(scale=0.2, pad_x=0.0, pad_y=14.0)
        assert (boxed[:14] == 114).all() and (boxed[50:] == 114).all()
        assert (boxed[14:50] == 255).all()

    def test_box_maps_back_through_letterbox_and_working_size(self) -> None:
        # Working image 320x180 of a 1280x720 stream; an object at (40..80, 20..60) in the working image
        # is at (8..16, 14+4..14+12) in the 64x64 model input.
        _, box = letterbox(np.zeros((180, 320, 3), np.uint8), 64, 64)
        model_box = np.array([[8, 18, 16, 26]], np.float32)

        mapped = to_source(model_box, box, (320, 180), (1280, 720))

        np.testing.assert_allclose(mapped, [[160, 80, 320, 240]], atol=1e-4)

    def test_mapped_boxes_are_clipped_to_the_stream(self) -> None:
        mapped = to_source(
            np.array([[-5, -20, 70, 70]], np.float32), Letterbox(0.2, 0, 14), (320, 180), (640, 360)
        )
        np.testing.assert_allclose(mapped, [[0, 0, 640, 360]])

    def test_tensor_is_chw_rgb_scaled(self) -> None:
        image = np.zeros((2, 2, 3), np.uint8)
        image[..., 2] = 255  # red in BGR

        tensor = to_tensor(image)

        assert tensor.shape == (3, 2, 2) and tensor.dtype == np.float32
        assert (tensor[0] == 1.0).all() and (tensor[1:] == 0).all()

    def test_tensor_mean_std(self) -> None:
        image = np.full((2, 2, 3), (0, 128, 255), np.uint8)  # B, G, R
        tensor = to_tensor(image, mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 0.5))
        np.testing.assert_allclose(tensor[:, 0, 0], [1.0, (128 / 255 - 0.5) / 0.25, -1.0], atol=1e-6)
        assert tensor.flags["C_CONTIGUOUS"]


class TestDecode:
    def test_yolov8_layout_through_onnxruntime(self) -> None:
        rows = np.array(ANCHORS, np.float32).T  # [4+C, N]
        output = run(constant_detector(rows, layout="yolov8"))
        assert output.shape == (6, 4)

        found = nms(decode(output, "yolov8", 2, min_confidence=0.25), 0.45)

        np.testing.assert_allclose(found.boxes, [[15, 15, 25, 25], [15, 15, 25, 25]])
        np.testing.assert_allclose(found.scores, [0.9, 0.7], rtol=1e-6)
        assert found.class_ids.tolist() == [0, 1]

    def test_yolov5_layout_multiplies_objectness(self) -> None:
        rows = np.array([(*a[:4], 0.5, *a[4:]) for a in ANCHORS], np.float32)  # [N, 5+C], objectness 0.5
        output = run(constant_detector(rows, layout="yolov5"))
        assert output.shape == (4, 7)

        found = decode(output, "yolov5", 2, min_confidence=0.3)

        # A: 0.45, B: 0.4, C: 0.35; D: 0.025 dropped.
        np.testing.assert_allclose(found.scores, [0.45, 0.4, 0.35], rtol=1e-6)
        assert found.class_ids.tolist() == [0, 0, 1]
        kept = nms(found, 0.45)
        np.testing.assert_allclose(kept.scores, [0.45, 0.35], rtol=1e-6)

    def test_yolov8_accepts_transposed_output(self) -> None:
        rows = np.array(ANCHORS, np.float32)  # [N, 4+C]
        found = decode(rows, "yolov8", 2, 0.25)
        assert len(found) == 3

    @pytest.mark.parametrize(("layout", "shape"), [("yolov8", (7, 4)), ("yolov5", (4, 6))])
    def test_wrong_width_is_a_clear_error(self, layout: str, shape: tuple[int, int]) -> None:
        with pytest.raises(ValueError, match=layout):
            decode(np.zeros(shape, np.float32), layout, 2, 0.25)  # type: ignore[arg-type]


def reference_nms(found: Decoded, threshold: float) -> list[int]:
    """The textbook greedy loop, one box at a time, in float64."""
    order = sorted(range(len(found)), key=lambda i: -found.scores[i])
    keep: list[int] = []
    boxes = found.boxes.astype(np.float64)
    for i in order:
        same = [k for k in keep if found.class_ids[k] == found.class_ids[i]]
        if not same or iou_matrix(boxes[i : i + 1], boxes[same]).max() <= threshold:
            keep.append(i)
    return keep


class TestNMS:
    def make(self, boxes: list[list[float]], scores: list[float], classes: list[int]) -> Decoded:
        return Decoded(
            np.array(boxes, np.float32).reshape(-1, 4),
            np.array(scores, np.float32),
            np.array(classes, np.int64),
        )

    def test_iou_exactly_at_threshold_is_kept(self) -> None:
        # Two 10x10 boxes overlapping by 10x5: IoU = 50 / 150 = 1/3.
        found = self.make([[0, 0, 10, 10], [0, 5, 10, 15]], [0.9, 0.8], [0, 0])
        assert len(nms(found, 1 / 3 + 1e-6)) == 2
        assert nms(found, 0.3).scores.tolist() == pytest.approx([0.9])

    def test_suppression_is_greedy_by_score(self) -> None:
        # b overlaps a and c; a suppresses b, so c (not overlapping a) survives.
        found = self.make([[0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]], [0.7, 0.9, 0.8], [0, 0, 0])
        kept = nms(found, 0.3)
        assert kept.scores.tolist() == pytest.approx([0.9])
        found2 = self.make([[0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]], [0.9, 0.7, 0.8], [0, 0, 0])
        assert nms(found2, 0.3).scores.tolist() == pytest.approx([0.9, 0.8])

    @pytest.mark.parametrize("seed", [7, 8, 9])
    def test_matches_a_plain_greedy_reference(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        xy, wh = rng.random((300, 2)) * 200, rng.random((300, 2)) * 80 + 40
        found = Decoded(
            np.hstack([xy, xy + wh]).astype(np.float32),
            rng.random(300).astype(np.float32),
            rng.integers(0, 4, 300),
        )

        kept = nms(found, 0.45)

        expected = reference_nms(found, 0.45)
        assert kept.boxes.tolist() == found.boxes[expected].tolist()
        assert 30 < len(kept) < 250  # the case really suppresses some boxes, and keeps some

    def test_max_detections(self) -> None:
        found = self.make(
            [[i * 20, 0, i * 20 + 10, 10] for i in range(5)], [0.9, 0.8, 0.7, 0.6, 0.5], [0] * 5
        )
        assert len(nms(found, 0.5, max_detections=3)) == 3

    def test_empty(self) -> None:
        assert len(nms(self.make([], [], []).take(np.array([], np.int64)), 0.5)) == 0
