"""Region mode: motion boxes, region planning, and the detector looking only where the picture changed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.analyzers.detector import Detector, DetectorOptionError, DetectorOptions
from app.analyzers.regions import MotionBoxes, plan_regions
from app.inference.install import install_known
from app.inference.pool import ResourcePool
from app.stream.frame import Frame
from tests.support.coco import read_frame


def test_motion_boxes_find_what_moved() -> None:
    motion = MotionBoxes()
    still = np.full((240, 320, 3), 90, np.uint8)
    assert motion.update(still) is None  # no reference yet
    assert motion.update(still.copy()) == []
    moved = still.copy()
    moved[100:140, 200:230] = 220
    (box,) = motion.update(moved)  # type: ignore[misc]
    x1, y1, x2, y2 = box
    assert x1 <= 200 / 320 < 230 / 320 <= x2 and y1 <= 100 / 240 < 140 / 240 <= y2
    assert x2 - x1 < 0.2 and y2 - y1 < 0.3
    noisy = np.clip(moved + np.random.default_rng(0).normal(0, 4, moved.shape), 0, 255).astype(np.uint8)
    assert motion.update(noisy) == []  # sensor noise is not motion


def test_plan_regions_pads_squares_merges_and_gives_up() -> None:
    size = (640, 480)
    (r,) = plan_regions([(0.5, 0.5, 0.52, 0.56)], size, min_side=96)  # type: ignore[misc]
    assert r[2] - r[0] == r[3] - r[1] == 96 and r[0] <= 320 and r[2] >= 333
    (edge,) = plan_regions([(0.97, 0.9, 1.0, 1.0)], size, min_side=96)  # type: ignore[misc]
    assert edge[2] == 640 and edge[3] == 480 and edge[2] - edge[0] == 96  # shifted inside, not cut
    merged = plan_regions([(0.1, 0.1, 0.2, 0.3), (0.18, 0.2, 0.3, 0.35)], size, min_side=96)
    assert merged is not None and len(merged) == 1
    apart = plan_regions([(0.05, 0.05, 0.1, 0.1), (0.8, 0.8, 0.85, 0.85)], size, min_side=96)
    assert apart is not None and len(apart) == 2
    many = [(x / 10, 0.1, x / 10 + 0.02, 0.12) for x in range(0, 10, 2)]
    assert plan_regions(many, size, min_side=48, max_regions=4) is None
    assert plan_regions([(0.1, 0.1, 0.9, 0.9)], size, min_side=96) is None  # covers most: full frame


@pytest.fixture
async def pool(coco_models_copy: Path) -> ResourcePool:  # type: ignore[misc]
    install_known(coco_models_copy, "yolov3-tiny", input_size=(160, 160), as_name="yolov3-tiny-160")
    async with ResourcePool(coco_models_copy, builtin_vad=False, max_wait_ms=20, calibrate=False) as pool:
        yield pool


def frames_of(image: np.ndarray, t0: float, count: int, fps: float = 5.0) -> list[Frame]:
    h, w = image.shape[:2]
    return [Frame(1, i, t0 + i / fps, image, w, h) for i in range(count)]


async def test_a_calm_camera_runs_no_detector_and_still_people_keep_their_tracks(pool: ResourcePool) -> None:
    options = {"model": "yolov3-tiny", "mode": "regions", "classes": ["person"], "min_hits": 1}
    det = Detector(DetectorOptions.parse({**options, "full_every_s": 5.0}), pool)
    street = read_frame("vtest", 100)
    # given a first frame (no reference: the full frame is searched) with people standing in it
    first = await det.process(frames_of(street, 0.0, 1)[0], {})
    opened = {f.key for f in first.findings if f.phase == "open"}
    assert first.data["pass"] == "full" and len(opened) >= 4
    calls = pool.stats("yolov3-tiny")[0]["calls"]
    # when nothing moves for 9 s (45 frames at 5 FPS)
    seen = []
    for frame in frames_of(street, 0.2, 45):
        obs = await det.process(frame, {})
        seen.append(obs)
        assert not [f for f in obs.findings if f.phase in ("open", "close")], obs.findings
    # then the detector ran only for the full-frame refresh at 5 s, and the people kept their tracks
    assert [o.data["pass"] for o in seen].count("full") == 1
    assert pool.stats("yolov3-tiny")[0]["calls"] == calls + 1
    assert det.passes["idle"] == 44
    tracks = {d.track_id for d in seen[-1].detections}
    assert {int(k.split(":")[1]) for k in opened} <= tracks


async def test_regions_of_a_frame_are_batched_and_found(pool: ResourcePool) -> None:
    options = {"model": "yolov3-tiny", "mode": "regions", "classes": ["person"], "min_hits": 1}
    det = Detector(DetectorOptions.parse({**options, "region_model": "yolov3-tiny-160"}), pool)
    # given two walkers far apart (vtest 700: bottom left and right) who move while nothing else does
    before, later = read_frame("vtest", 700), read_frame("vtest", 703)
    after = before.copy()
    for y1, y2, x1, x2 in ((270, 410, 85, 160), (200, 320, 670, 740)):
        after[y1:y2, x1:x2] = later[y1:y2, x1:x2]
    await det.process(Frame(1, 0, 0.0, before, 768, 576), {})
    obs = await det.process(Frame(1, 1, 0.6, after, 768, 576), {})
    # then two regions are searched, in one batch of the region model, and both walkers are found there
    assert obs.data["pass"] == "regions" and obs.data["regions"] == 2
    stats = pool.stats("yolov3-tiny-160")[0]
    assert stats["calls"] == 2 and stats["batch_histogram"] == {"2": 1}
    xs = sorted((d.x1 + d.x2) / 2 for d in obs.detections if d.label == "person")
    assert any(x < 200 for x in xs) and any(x > 650 for x in xs)


async def test_region_model_must_share_the_classes(pool: ResourcePool) -> None:
    with pytest.raises(DetectorOptionError, match="region_model"):
        Detector(DetectorOptions.parse({"model": "yolov3-tiny", "region_model": "nope"}), pool)
