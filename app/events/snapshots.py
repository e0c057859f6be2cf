"""Event snapshots: DATA_DIR/snapshots/<camera>/<date>/<event id>.jpg; rows keep the relative path."""

from __future__ import annotations

import asyncio
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from app.kit.jpeg import encode_jpeg

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class SnapshotError(ValueError):
    pass


def snapshot_relpath(event_id: str, camera_id: int | None, at: datetime | None = None) -> str:
    """Relative to DATA_DIR, with `/` separators, so rows stay valid if DATA_DIR moves."""
    if not _SAFE_ID.match(event_id):
        raise SnapshotError(f"event id {event_id!r} is not usable as a file name")
    day = (at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d")
    camera = str(int(camera_id)) if camera_id is not None else "none"
    return f"snapshots/{camera}/{day}/{event_id}.jpg"


def write_snapshot(
    data_dir: Path,
    event_id: str,
    camera_id: int | None,
    image: np.ndarray | bytes,
    *,
    quality: int = 85,
    at: datetime | None = None,
) -> str:
    """Blocking: encode (unless given JPEG bytes) and write atomically; returns the relative path."""
    rel = snapshot_relpath(event_id, camera_id, at)
    data = image if isinstance(image, bytes | bytearray) else encode_jpeg(image, quality)
    target = Path(data_dir) / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".jpg.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)  # readers never see a half-written JPEG
    return rel


async def save_snapshot(
    data_dir: Path,
    event_id: str,
    camera_id: int | None,
    image: np.ndarray | bytes,
    *,
    quality: int = 85,
    at: datetime | None = None,
) -> str:
    """Encode and write in a thread (never on the loop); returns the path to store in `snapshot_path`."""
    return await asyncio.to_thread(
        write_snapshot, data_dir, event_id, camera_id, image, quality=quality, at=at
    )


def resolve_snapshot(data_dir: Path, rel_path: str | None) -> Path | None:
    """The file for a stored relative path, or None if missing or outside DATA_DIR (never trust rows)."""
    if not rel_path:
        return None
    root = Path(data_dir).resolve()
    path = (root / rel_path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def read_snapshot(data_dir: Path, rel_path: str | None) -> bytes | None:
    path = resolve_snapshot(data_dir, rel_path)
    return path.read_bytes() if path is not None else None


async def load_snapshot(data_dir: Path, rel_path: str | None) -> bytes | None:
    return await asyncio.to_thread(read_snapshot, data_dir, rel_path)
