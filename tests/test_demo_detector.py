"""`argus demo --detector`: the demo cameras run the real COCO detector and the street camera sees people."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from app.demo import DETECTOR_MODEL, STREET_CAMERA, encode_h264, prepare_demo
from app.kit.db import create_engine, create_sessionmaker
from app.main import create_app
from app.models import Camera
from tests.conftest import AUTH, make_settings
from tests.support.coco import video_path
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow


async def test_demo_detector_sees_people_on_the_street(coco_models_copy: Path, tmp_path: Path) -> None:
    # given the demo prepared with --detector, its model already converted in the models dir
    street = video_path("vtest")
    settings = make_settings(tmp_path / "data", models_dir=coco_models_copy)
    # (a 12-s street clip made here keeps the test short; the demo encodes all 80 s of vtest.avi once)
    (settings.resolved_media_dir / "demo").mkdir(parents=True)
    encode_h264(street, settings.resolved_media_dir / "demo" / "street.mp4", max_frames=120)
    settings = await prepare_demo(settings, seconds=2, detector=True)
    engine = create_engine(settings.database_url)
    async with create_sessionmaker(engine)() as session:
        rows = {r.name: r for r in (await session.scalars(select(Camera))).all()}
    await engine.dispose()
    # then every demo camera runs the detector with yolov3-tiny, and a real street camera was added
    assert set(rows) == {"demo-moving", "demo-quiet", STREET_CAMERA}
    for row in rows.values():
        assert [a["options"]["model"] for a in row.analyzers if a["name"] == "detector"] == [DETECTOR_MODEL]
    # when the server runs, the street camera opens object events for the people walking there
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://argus", headers=AUTH) as client:

            async def people() -> list[dict]:  # type: ignore[type-arg]
                params = {"camera_id": rows[STREET_CAMERA].id, "type": "object"}
                items = (await client.get("/api/events", params=params)).json()["items"]
                return [e for e in items if e["data"].get("label") == "person"]

            events = await eventually(people, 30)
            # and the quiet camera (sensor noise only) ran the detector on its first frame and then idled
            quiet = (await client.get(f"/api/cameras/{rows['demo-quiet'].id}/status")).json()["detector"]
    assert quiet["mode"] == "regions" and quiet["passes"].get("idle", 0) >= 3, quiet
    assert quiet["passes"].get("full", 0) <= 1 and not quiet["passes"].get("regions"), quiet
    assert events[0]["data"]["confidence"] >= 0.4
    # and preparing again changes nothing (no duplicate analyzers or cameras)
    await prepare_demo(settings, seconds=2, detector=True)
    engine = create_engine(settings.database_url)
    async with create_sessionmaker(engine)() as session:
        again = (await session.scalars(select(Camera))).all()
    await engine.dispose()
    assert sorted(len(r.analyzers) for r in again) == [1, 1, 1]
