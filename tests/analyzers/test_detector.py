"""The detector analyzer end to end through the real pool and onnxruntime, on the blob-detector graph.

Frames are 128x72 working images of a 1280x720 stream; the model input is 64x64, so the letterbox
scale is 0.5 with 14 px of padding above. A 16x16 square at an even (x, y) of the working image becomes
an exact 8x8 blob in the model input, so its box in stream pixels is exactly (10x, 10y, 10x+160, 10y+160).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from app.analyzers.base import Finding, Observation
from app.analyzers.detector import Detector, DetectorOptionError, DetectorOptions, create_detector
from app.analyzers.registry import AnalyzerContext, AnalyzerRegistry, ChainError
from app.config import Settings
from app.inference.manifest import ModelSpec
from app.inference.pool import ResourcePool
from app.stream.frame import Frame
from tests.support.media import media_path
from tests.support.onnx_graphs import BLOB_CLASSES, blob_detector, save
from tests.support.waiting import eventually

BGR = {"red": (0, 0, 255), "green": (0, 255, 0), "blue": (255, 0, 0)}
RIGHT_HALF = [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]
LEFT_HALF = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[ResourcePool]:
    async with ResourcePool(tmp_path / "models", builtin_vad=False, max_wait_ms=1) as pool:
        for layout in ("yolov8", "yolov5"):
            path = save(blob_detector((64, 64), layout), tmp_path / f"blob-{layout}.onnx")
            pool.register(
                ModelSpec(
                    name=f"blob-{layout}", kind="detector", path=path, layout=layout, class_names=BLOB_CLASSES
                )
            )
        yield pool


def frame(t: float, *squares: tuple[str, int, int], seq: int = 0, camera_id: int = 1) -> Frame:
    image = np.zeros((72, 128, 3), np.uint8)
    for color, x, y in squares:
        image[y : y + 16, x : x + 16] = BGR[color]
    return Frame(camera_id, seq, t, image, 1280, 720)


def make(pool: ResourcePool, camera_id: int | None = 1, **options: Any) -> Detector:
    options.setdefault("model", "blob-yolov8")
    return Detector(DetectorOptions.parse(options), pool, camera_id)


async def run(det: Detector, frames: list[Frame]) -> tuple[list[Observation], list[Finding]]:
    observations = [await det.process(f, {}) for f in frames]
    return observations, [f for o in observations for f in o.findings]


def walk(points: list[tuple[int, int]], step: int = 4) -> list[tuple[int, int]]:
    """Positions every `step` px along straight legs, so consecutive boxes overlap and tracks hold."""
    out = [points[0]]
    for x2, y2 in points[1:]:
        x, y = out[-1]
        while (x, y) != (x2, y2):
            x += max(-step, min(step, x2 - x))
            y += max(-step, min(step, y2 - y))
            out.append((x, y))
    return out


def phases(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.phase, f.key) for f in findings]


class TestDetection:
    @pytest.mark.parametrize("layout", ["yolov8", "yolov5"])
    async def test_boxes_in_stream_pixels_for_both_layouts(self, pool: ResourcePool, layout: str) -> None:
        det = make(pool, model=f"blob-{layout}", min_hits=1)

        obs = await det.process(frame(0.0, ("red", 20, 10), ("blue", 80, 40)), {})

        by_label = {d.label: d for d in obs.detections}
        assert set(by_label) == {"red", "blue"}
        assert (by_label["red"].x1, by_label["red"].y1, by_label["red"].x2, by_label["red"].y2) == (
            200,
            100,
            360,
            260,
        )
        assert (by_label["blue"].x1, by_label["blue"].y1, by_label["blue"].x2, by_label["blue"].y2) == (
            800,
            400,
            960,
            560,
        )
        assert by_label["red"].confidence == 1.0 and by_label["red"].class_id == 0
        assert sorted(d.track_id for d in obs.detections) == [1, 2]  # type: ignore[type-var]

    async def test_classes_filter(self, pool: ResourcePool) -> None:
        det = make(pool, classes=["blue"])
        obs = await det.process(frame(0.0, ("red", 20, 10), ("blue", 80, 40)), {})
        assert [d.label for d in obs.detections] == ["blue"]

    async def test_masks_drop_detections_whose_feet_are_inside(self, pool: ResourcePool) -> None:
        det = make(pool, masks=[LEFT_HALF])
        obs = await det.process(frame(0.0, ("red", 20, 10), ("blue", 80, 40)), {})
        assert [d.label for d in obs.detections] == ["blue"]

    @pytest.mark.parametrize(("min_area", "kept"), [(0.02, 1), (0.03, 0), (25_600, 1), (25_601, 0)])
    async def test_min_area_as_fraction_or_pixels(
        self, pool: ResourcePool, min_area: float, kept: int
    ) -> None:
        # The box is 160x160 = 25,600 px² of a 921,600 px² stream: 2.78 % of the frame.
        det = make(pool, min_area=min_area)
        obs = await det.process(frame(0.0, ("red", 20, 10)), {})
        assert len(obs.detections) == kept

    async def test_cameras_sharing_the_model_each_get_their_own_boxes(self, pool: ResourcePool) -> None:
        dets = [make(pool, camera_id=i, min_hits=1) for i in range(6)]
        frames = [frame(0.0, ("green", 8 * i, 2 * i), camera_id=i) for i in range(6)]

        results = await asyncio.gather(*(d.process(f, {}) for d, f in zip(dets, frames, strict=True)))

        assert [(o.detections[0].x1, o.detections[0].y1) for o in results] == [
            (80 * i, 20 * i) for i in range(6)
        ]
        assert pool.stats("blob-yolov8")[0]["cameras"] == list(range(6))


class TestTracking:
    async def test_one_open_updates_while_it_stays_and_close_after_it_leaves(
        self, pool: ResourcePool
    ) -> None:
        det = make(pool, min_hits=2, lost_after_s=0.5, update_every_s=0.9)
        # 5 FPS: the red square walks right for 2 s, then is gone for 1 s.
        moving = [frame(i * 0.2, ("red", 4 + 4 * i, 20), seq=i) for i in range(11)]
        gone = [frame(2.2 + i * 0.2, seq=11 + i) for i in range(5)]

        observations, findings = await run(det, moving + gone)

        assert phases(findings) == [("open", "track:1"), ("update", "track:1"), ("close", "track:1")]
        opened, *_, closed = findings
        assert opened.data["label"] == "red" and opened.data["track_id"] == 1
        assert opened.data["box"] == [80.0, 200.0, 240.0, 360.0]  # frame 1: x = 8
        assert opened.kind == "object" and opened.severity == "medium" and opened.score == 1.0
        assert closed.data["reason"] == "lost"
        # The close comes on the first frame more than 0.5 s after the last sighting (t = 2.0).
        closing = next(i for i, o in enumerate(observations) if any(f.phase == "close" for f in o.findings))
        assert observations[closing] is observations[13]  # t = 2.6
        assert all(d.track_id == 1 for o in observations[1:11] for d in o.detections)

    async def test_zone_entry_opens_zone_change_updates_leaving_closes(self, pool: ResourcePool) -> None:
        det = make(
            pool,
            min_hits=1,
            lost_after_s=0.3,
            update_every_s=60,
            zones=[
                {"name": "right", "polygon": RIGHT_HALF},
                {"name": "bottom", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]},
            ],
        )
        # Feet (bottom-centre) at ((x + 8) / 128, (y + 16) / 72): right from x = 56, bottom from y = 20.
        path = walk([(20, 4), (80, 4), (80, 40), (40, 40), (40, 4)]) + [(40, 4)] * 3
        frames = [frame(i * 0.2, ("blue", x, y), seq=i) for i, (x, y) in enumerate(path)]

        _, findings = await run(det, frames)

        assert [(f.phase, f.data["zones"]) for f in findings] == [
            ("open", ["right"]),  # at (56, 4)
            ("update", ["right", "bottom"]),  # at (80, 20)
            ("update", ["bottom"]),  # at (52, 40)
            ("close", ["bottom"]),  # out of every zone from (40, 16), closed 2 frames (0.4 s) later
        ]
        assert findings[-1].data["reason"] == "left_zone"
        assert {f.key for f in findings} == {"track:1"}

    async def test_no_zones_no_events_for_objects_outside_them(self, pool: ResourcePool) -> None:
        det = make(pool, min_hits=1, zones=[{"name": "right", "polygon": RIGHT_HALF}])
        observations, findings = await run(det, [frame(i * 0.2, ("red", 10, 10)) for i in range(4)])
        assert findings == []
        assert all(len(o.detections) == 1 for o in observations)  # still drawn in the live view

    async def test_finish_closes_open_tracks_and_detaches(self, pool: ResourcePool) -> None:
        det = make(pool, camera_id=7, min_hits=1)
        await run(det, [frame(0.0, ("red", 10, 10), ("green", 60, 30))])
        assert pool.stats("blob-yolov8")[0]["cameras"] == [7]

        closing = det.finish()

        assert sorted(phases(list(closing))) == [("close", "track:1"), ("close", "track:2")]
        assert all(f.data["reason"] == "stopped" for f in closing)
        assert det.finish() == ()
        assert pool.stats("blob-yolov8")[0]["cameras"] == []


class TestOptions:
    @pytest.mark.parametrize(
        ("options", "field"),
        [
            ({"model": "nope"}, "options.model"),
            ({"model": "blob-yolov8", "classes": ["cat"]}, "options.classes"),
            ({"model": "blob-yolov8", "min_confidence": 2}, "options.min_confidence"),
            (
                {"model": "blob-yolov8", "zones": [{"name": "z", "polygon": [[0, 0], [2, 0], [0, 1]]}]},
                "options.zones",
            ),
            ({"model": "blob-yolov8", "masks": "left"}, "options.masks"),
            ({"model": "blob-yolov8", "colour": "red"}, "options.colour"),
            ({}, "options.model"),
        ],
    )
    def test_bad_options_name_the_option(
        self, pool: ResourcePool, options: dict[str, Any], field: str
    ) -> None:
        ctx = AnalyzerContext(camera_id=1, pool=pool, settings=None)  # type: ignore[arg-type]
        with pytest.raises(DetectorOptionError) as err:
            create_detector(options, ctx)
        assert err.value.field == field and err.value.status_code == 422
        assert isinstance(err.value, ValueError)

    def test_registry_validates_the_chain_without_building(self, pool: ResourcePool) -> None:
        registry = AnalyzerRegistry({"detector": "app.analyzers.detector:ANALYZER"}, [])
        good = {
            "name": "detector",
            "options": {"model": "blob-yolov5", "zones": [{"name": "a", "polygon": RIGHT_HALF}]},
        }

        [entry] = registry.validate_chain([good], models=pool.names())

        assert entry.options["zones"] == [{"name": "a", "polygon": RIGHT_HALF}]
        with pytest.raises(ChainError) as err:
            registry.validate_chain(
                [{"name": "detector", "options": {"model": "x", "zones": [{"name": "a"}]}}]
            )
        assert err.value.field == "analyzers[0].options.zones"
        with pytest.raises(ChainError) as err:
            registry.validate_chain(
                [{"name": "detector", "options": {"model": "missing"}}], models=pool.names()
            )
        assert err.value.field == "analyzers[0].options.model"


def write_crossing(
    path: Path, seconds: float = 9.0, fps: int = 15, cross: tuple[float, float] = (1.0, 5.0)
) -> Path:
    """MJPG clip, black 320x180, a red 40x40 square crossing left to right during `cross`."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (320, 180))
    assert writer.isOpened()
    for i in range(int(seconds * fps)):
        image = np.zeros((180, 320, 3), np.uint8)
        t = i / fps
        if cross[0] <= t < cross[1]:
            x = int((t - cross[0]) / (cross[1] - cross[0]) * 260)
            image[100:140, x + 10 : x + 50] = (0, 0, 255)
        writer.write(image)
    writer.release()
    return path


class TestThroughTheApp:
    async def test_a_crossing_object_is_one_stored_event_with_a_snapshot(
        self, app_client: httpx.AsyncClient, settings: Settings
    ) -> None:
        # given: the blob detector registered over the API, a camera on a clip where a red square crosses
        settings.resolved_models_dir.mkdir(parents=True, exist_ok=True)
        model = save(blob_detector((64, 64), "yolov8"), settings.resolved_models_dir / "blob.onnx")
        manifest = {"name": "blob", "kind": "detector", "path": str(model), "layout": "yolov8",
                    "class_names": list(BLOB_CLASSES)}  # fmt: skip
        assert (await app_client.post("/api/models", json={"manifest": manifest})).status_code == 201
        clip = write_crossing(media_path(settings, "crossing.avi"))
        options = {
            "model": "blob",
            "classes": ["red"],
            "lost_after_s": 1.5,
            "zones": [{"name": "all", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
        }
        body = {"name": "yard", "url": str(clip), "vad": {"enabled": False},
                "analyzers": [{"name": "detector", "options": options}]}  # fmt: skip
        created = await app_client.post("/api/cameras", json=body)
        assert created.status_code == 201, created.text
        cam = created.json()
        # a model in use cannot be unloaded
        assert (await app_client.delete("/api/models/blob")).status_code == 409

        # when: the square has crossed and left (closed event stored), the camera is stopped
        events: list[dict[str, Any]] = []

        async def closed() -> bool:
            nonlocal events
            r = await app_client.get("/api/events", params={"camera_id": cam["id"], "type": "object"})
            events = r.json()["items"]
            return bool(events) and events[0]["ended_at"] is not None

        await eventually(closed, 30, interval=0.2, what=lambda: f"a closed object event ({events})")
        await app_client.patch(f"/api/cameras/{cam['id']}", json={"enabled": False})

        # then: one event for the crossing, with its label, track, zone and snapshot
        stored = (await app_client.get("/api/events", params={"camera_id": cam["id"]})).json()["items"]
        assert len(stored) == 1, [(e["data"], e["started_at"], e["ended_at"]) for e in stored]
        event = stored[0]
        assert event["type"] == "object" and event["severity"] == "medium"
        assert event["data"]["label"] == "red" and event["data"]["track_id"] == 1
        assert event["data"]["zones"] == ["all"] and event["data"]["reason"] == "lost"
        x1, y1, x2, y2 = event["data"]["box"]
        assert 95 <= y1 <= 105 and 135 <= y2 <= 145 and 35 <= x2 - x1 <= 45  # the square, in stream pixels
        snap = await app_client.get(f"/api/events/{event['id']}/snapshot.jpg")
        assert snap.status_code == 200 and snap.content[:2] == b"\xff\xd8"
        assert (await app_client.delete("/api/models/blob")).status_code == 204
