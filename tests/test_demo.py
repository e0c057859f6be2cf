"""`argus demo` preparation: playable generated videos, two cameras, a persisted key; idempotent."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import pytest
from sqlalchemy import select

from app.config import Settings
from app.demo import prepare_demo
from app.kit.db import create_engine, create_sessionmaker
from app.models import Camera
from tests.conftest import make_settings


async def camera_rows(settings: Settings) -> list[Camera]:
    engine = create_engine(settings.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            return list((await session.scalars(select(Camera).order_by(Camera.name))).all())
    finally:
        await engine.dispose()


async def test_prepare_demo_twice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # given settings without any API key
    settings = make_settings(tmp_path / "data", api_keys="")
    # when the demo is prepared (short clips keep the test cheap)
    first = await prepare_demo(settings, seconds=2)
    out = capsys.readouterr().out
    # then a key is made, persisted privately, printed with a curl example, and served with
    key = first.static_api_keys[0]
    key_file = settings.data_dir / "demo_api_key"
    assert key_file.read_text().strip() == key
    assert key_file.stat().st_mode & 0o077 == 0
    assert key in out and f"Authorization: Bearer {key}" in out and "/api/cameras" in out
    # and two cameras point at videos OpenCV reads back at 640x360, 15 FPS
    rows = await camera_rows(settings)
    assert [r.name for r in rows] == ["demo-moving", "demo-quiet"]
    for row in rows:
        cap = cv2.VideoCapture(row.url, cv2.CAP_FFMPEG)
        ok, image = cap.read()
        fps = cap.get(cv2.CAP_PROP_FPS)
        cap.release()
        assert ok and image.shape == (360, 640, 3) and fps == 15
        assert Path(row.url).is_relative_to(settings.resolved_media_dir)  # where cameras may read files
    # when it runs again, nothing is duplicated or regenerated and the key stays
    mtime = os.stat(rows[0].url).st_mtime_ns
    again = await prepare_demo(settings, seconds=2)
    assert again.static_api_keys == [key]
    assert [r.id for r in await camera_rows(settings)] == [r.id for r in rows]
    assert os.stat(rows[0].url).st_mtime_ns == mtime


async def test_configured_key_is_used_as_is(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", api_keys="mine-123")
    result = await prepare_demo(settings, seconds=1)
    assert result.static_api_keys == ["mine-123"]
    assert not (settings.data_dir / "demo_api_key").exists()
