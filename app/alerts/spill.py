"""AlertSpill: the alert engine's files under the spill folder, for what the outbox could not take.

`alert-pending-*.jsonl`: events still unhandled at shutdown, replayed (oldest file first) at the next
start. `alerts-rejected-*.jsonl` / `alert-events-rejected-*.jsonl`: rows or events the database refused
for their content, kept for a human and never retried blindly. Files are written whole and renamed into
place, so a crash never leaves half a file to replay. With no folder (or a failed write) the records
are logged in full instead: nothing is dropped without a trace.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.events.types import NewEvent
from app.metrics import ALERTS_DROPPED

log = logging.getLogger("argus.alerts")
PENDING = "alert-pending"


class AlertSpill:
    def __init__(self, folder: Path | None) -> None:
        self.folder = folder  # None: records are only logged (in full)
        self._seq = itertools.count()
        self.rejected = 0  # rows and events written to a rejected file instead of the outbox
        self.spilled = 0  # events left at shutdown, kept for the next start
        self.replayed = 0

    def reject(self, prefix: str, records: list[dict[str, Any]]) -> None:
        """Keep what the database refused in a file for a human; never retried blindly."""
        self.rejected += len(records)
        path = self._write(prefix, records)
        log.error("%d %s kept in %s", len(records), prefix.replace("-", " "), path or "the log only")

    def keep_pending(self, events: list[NewEvent]) -> None:
        """Events not yet considered at shutdown: kept for `replay` at the next start."""
        path = self._write(PENDING, [e.to_json() for e in events])
        if path is not None:
            self.spilled += len(events)
            log.error(
                "%d events not yet considered for alerts kept in %s for the next start", len(events), path
            )
        else:
            ALERTS_DROPPED.labels(reason="stopped").inc(len(events))

    async def replay(self, handle: Callable[[list[NewEvent]], Awaitable[None]], batch: int) -> None:
        """Hand the pending events to `handle` in batches, oldest file first; a file goes once handled."""
        if self.folder is None or not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob(f"{PENDING}-*.jsonl")):
            try:
                text = await asyncio.to_thread(path.read_text, encoding="utf-8")
                events = [NewEvent.from_json(json.loads(line)) for line in text.splitlines() if line.strip()]
            except (OSError, ValueError, KeyError):
                log.exception("unreadable alert spill file %s left in place", path)
                continue
            for i in range(0, len(events), batch):
                await handle(events[i : i + batch])
            path.unlink()
            self.replayed += len(events)
            log.info("replayed %d events from %s", len(events), path)

    def _write(self, prefix: str, records: list[dict[str, Any]]) -> Path | None:
        """Write records as JSONL (atomic rename); on no folder or a failed write, log them in full."""
        lines = [json.dumps(r, default=str) for r in records]
        if self.folder is not None:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            path = self.folder / f"{prefix}-{stamp}-{os.getpid()}-{next(self._seq):06d}.jsonl"
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
                tmp.replace(path)
                return path
            except OSError:
                log.exception("could not write %s", path)
        for line in lines:
            log.error("%s: %s", prefix, line)
        return None
