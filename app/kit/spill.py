"""SpillDir: append-only JSONL files for records that could not go where they belong (yet).

Each write adds one new file `<prefix>-<UTC stamp>-<pid>-<seq>.jsonl`, so sorted names are write order.
A file is written whole under a temporary name, fsynced, renamed into place and the folder fsynced:
a crash never leaves half a file to replay, and a file that exists survives a power cut. `replay`
hands the files of a prefix to a handler, oldest first, and deletes each one only once it is handled
(truncate after replay): a failure mid-way leaves it, and everything newer, for the next replay.
Used by the event logger (events the database could not take) and the alert engine (events not yet
considered at shutdown, rows the database refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class SpillDir:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._seq = itertools.count()

    def files(self, prefix: str) -> list[Path]:
        """The files of `prefix`, oldest first."""
        return sorted(self.folder.glob(f"{prefix}-*.jsonl")) if self.folder.is_dir() else []

    def new_path(self, prefix: str) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        return self.folder / f"{prefix}-{stamp}-{os.getpid()}-{next(self._seq):06d}.jsonl"

    def write(self, prefix: str, records: Iterable[dict[str, Any]]) -> Path:
        """Blocking: one new file holding `records`, durable once this returns. Raises OSError."""
        path = self.new_path(prefix)
        write_jsonl(path, records)
        return path

    async def write_async(self, prefix: str, records: Iterable[dict[str, Any]]) -> Path:
        """`write` in a thread (the records are serialised there too)."""
        return await asyncio.to_thread(self.write, prefix, list(records))

    async def replay(self, prefix: str, handle: Callable[[Path, list[str]], Awaitable[bool]]) -> int:
        """Hand each file's non-empty lines to `handle`, oldest file first; delete the file once `handle`
        returns True. False leaves it in place (unreadable: kept for a human) and goes on with the next;
        an exception leaves it and stops. Returns the lines of the files handled."""
        handled = 0
        for path in self.files(prefix):
            text = await asyncio.to_thread(path.read_text, encoding="utf-8")
            lines = [line for line in text.splitlines() if line.strip()]
            if await handle(path, lines):
                path.unlink(missing_ok=True)
                handled += len(lines)
        return handled


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Blocking: `records` as JSON lines in `path`, atomically (tmp + fsync + rename + folder fsync)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a platform without directory fds skips it."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
