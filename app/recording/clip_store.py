"""Clip files and their rows: DATA_DIR/media/clips/<camera>/<event id>[.<part>].mp4; rows keep part 1's
relative path and the number of parts. Crash repair at start; deletion with the camera or the event.

The row's clip columns are written only here, by direct UPDATEs of a stored row: the event logger's
upsert lists the columns it replaces and these are not among them, so neither side undoes the other.
In cluster mode a clip carries its camera's lease token and a stale one is refused (set_clips).
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.events.repository import EventRepository
from app.metrics import EVENTS_FENCED
from app.recording.fmp4 import repair
from app.recording.part_writer import WRITING

log = logging.getLogger("argus.clips")
CLIPS = "media/clips"
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_FILE = re.compile(r"^(?P<id>[A-Za-z0-9_-]{1,64})(?:\.(?P<part>[0-9]{1,4}))?\.mp4$")
_CHUNK = 500


def part_relpath(camera_id: int, event_id: str, part: int = 1) -> str:
    """Relative to DATA_DIR with `/` separators (rows stay valid if DATA_DIR moves)."""
    if not _SAFE_ID.match(event_id):
        raise ValueError(f"event id {event_id!r} is not usable as a file name")
    suffix = "" if part == 1 else f".{int(part)}"
    return f"{CLIPS}/{int(camera_id)}/{event_id}{suffix}.mp4"


def part_of(clip_path: str, part: int) -> str:
    """The path of part `part` of the clip whose part 1 is `clip_path`."""
    return clip_path if part == 1 else f"{clip_path.removesuffix('.mp4')}.{int(part)}.mp4"


def resolve(data_dir: Path, rel: str) -> Path | None:
    """The file a row's path names, or None if it points outside the clips folder."""
    root = (data_dir / CLIPS).resolve()
    path = (data_dir / rel).resolve()
    return path if path.is_relative_to(root) else None


class ClipRepository:
    """The clip columns of events, in short sessions of their own (the recorder runs outside requests);
    the statements are EventRepository's."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def set_clips(
        self,
        clips: Mapping[str, tuple[str | None, int]],
        fences: Mapping[str, tuple[int, int]] | None = None,
    ) -> set[str]:
        """Set (path, parts) on each stored event; returns the ids that have no row (yet).

        `fences`: event id -> (camera id, lease token) of the node that recorded it (cluster mode). A clip
        whose camera's lease has moved on since is not linked (a former owner's late write, the rule
        EventRepository.upsert_many applies to events); it is neither missing nor retried. Single node: none.
        """
        missing: set[str] = set()
        fences = fences or {}
        async with self._sessionmaker() as session, session.begin():
            repo = EventRepository(session)
            fenced = [i for i in clips if i in fences]
            tokens = await repo.lease_tokens({fences[i][0] for i in fenced}) if fenced else {}
            stale = sorted(i for i in fenced if tokens.get(fences[i][0]) != fences[i][1])
            refused = set(stale)
            if stale:
                EVENTS_FENCED.inc(len(stale))
                log.warning(
                    "%d clip link(s) refused: stale camera lease token (cameras %s: a former owner)",
                    len(stale),
                    sorted({fences[i][0] for i in stale}),
                )
            for event_id, (path, parts) in clips.items():
                if event_id in refused:
                    continue
                if not await repo.set_clip(event_id, path, parts):
                    missing.add(event_id)
        return missing

    async def stored(self, event_ids: Iterable[str]) -> dict[str, tuple[str | None, int]]:
        ids, found = list(event_ids), {}
        async with self._sessionmaker() as session:
            for i in range(0, len(ids), _CHUNK):
                found.update(await EventRepository(session).clips_of(ids[i : i + _CHUNK]))
        return found

    async def linked(self) -> dict[str, tuple[str | None, int]]:
        """Every event that names a clip."""
        async with self._sessionmaker() as session:
            return await EventRepository(session).linked_clips()

    async def clear_camera(self, camera_id: int) -> None:
        async with self._sessionmaker() as session, session.begin():
            await EventRepository(session).forget_camera_clips(camera_id)


def repair_unfinished(data_dir: Path) -> list[Path]:
    """Blocking: cut every part a dead writer left (marker present) to its last complete fragment, or
    delete it when it has none. Returns the files that had a marker."""
    touched = []
    for marker in sorted((data_dir / CLIPS).glob(f"*/*.mp4{WRITING}")):
        path = marker.with_name(marker.name.removesuffix(WRITING))
        kept = repair(path)
        log.warning(
            "clip %s was not finished (crash?): %s",
            path.name,
            f"kept {kept} fragments" if kept else "deleted",
        )
        marker.unlink(missing_ok=True)
        touched.append(path)
    return touched


def on_disk(data_dir: Path) -> dict[str, tuple[str | None, int]]:
    """Blocking: event id -> (part 1's path, count of consecutive parts from 1) for every clip file."""
    parts: dict[str, dict[int, str]] = defaultdict(dict)
    for path in (data_dir / CLIPS).glob("*/*.mp4"):
        match = _FILE.match(path.name)
        if match and path.parent.name.isdigit():
            number = int(match["part"] or 1)
            parts[match["id"]][number] = part_relpath(int(path.parent.name), match["id"], number)
    found: dict[str, tuple[str | None, int]] = {}
    for event_id, numbered in parts.items():
        count = 0
        while count + 1 in numbered:
            count += 1
        found[event_id] = (numbered.get(1), count) if count else (None, 0)
    return found


async def recover(data_dir: Path, repo: ClipRepository) -> None:
    """At start, before any writer: repair what a crash left, then make rows match the files (a clip whose
    row was stored after the recorder last tried, a part deleted by the repair, a file gone)."""
    await asyncio.to_thread(repair_unfinished, data_dir)
    disk = await asyncio.to_thread(on_disk, data_dir)
    rows = await repo.linked()
    rows.update(await repo.stored(i for i in disk if i not in rows))
    stale = {i: disk.get(i, (None, 0)) for i, row in rows.items() if row != disk.get(i, (None, 0))}
    if stale:
        await repo.set_clips(stale)
        log.info("clips: %d events relinked to their files", len(stale))


def delete_camera_files(data_dir: Path, camera_id: int) -> None:
    shutil.rmtree(data_dir / CLIPS / str(int(camera_id)), ignore_errors=True)


def delete_event_files(data_dir: Path, camera_id: int, event_id: str) -> None:
    folder = data_dir / CLIPS / str(int(camera_id))
    for path in folder.glob(f"{event_id}*.mp4*"):
        match = _FILE.match(path.name.removesuffix(WRITING))
        if match and match["id"] == event_id:
            path.unlink(missing_ok=True)
