"""Snapshot files: layout under DATA_DIR, atomic JPEG writes off the loop, reads confined to DATA_DIR."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.events.snapshots import SnapshotError, load_snapshot, resolve_snapshot, save_snapshot

AT = datetime(2026, 3, 4, 23, 30, tzinfo=UTC)


def leftovers(root: Path) -> list[Path]:
    return list(root.rglob("*.tmp"))


class TestSnapshots:
    async def test_saves_a_jpeg_under_camera_and_date(self, tmp_path: Path) -> None:
        image = np.full((36, 48, 3), 200, np.uint8)
        rel = await save_snapshot(tmp_path, "abc123", 7, image, at=AT)
        assert rel == "snapshots/7/2026-03-04/abc123.jpg"
        data = await load_snapshot(tmp_path, rel)
        assert data is not None
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert decoded.shape == (36, 48, 3)
        assert leftovers(tmp_path) == []

    async def test_accepts_jpeg_bytes_and_events_without_camera(self, tmp_path: Path) -> None:
        jpeg = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
        rel = await save_snapshot(tmp_path, "ext-1", None, jpeg, at=AT)
        assert rel == "snapshots/none/2026-03-04/ext-1.jpg"
        assert await load_snapshot(tmp_path, rel) == jpeg

    async def test_ids_that_are_not_file_names_are_refused(self, tmp_path: Path) -> None:
        with pytest.raises(SnapshotError):
            await save_snapshot(tmp_path, "../../etc/passwd", 1, np.zeros((8, 8, 3), np.uint8))

    def test_paths_outside_data_dir_or_missing_resolve_to_none(self, tmp_path: Path) -> None:
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        (tmp_path / "secret.jpg").write_bytes(b"x")
        assert resolve_snapshot(data_dir, "../secret.jpg") is None
        assert resolve_snapshot(data_dir, str(tmp_path / "secret.jpg")) is None
        assert resolve_snapshot(data_dir, "snapshots/1/2026-01-01/missing.jpg") is None
        assert resolve_snapshot(data_dir, None) is None
