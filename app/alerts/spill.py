"""AlertSpill: the alert engine's files under the spill folder (kit.spill), for what the outbox can't take.

`alert-pending-*.jsonl`: events still unhandled at shutdown, replayed (oldest file first) at the next
start. `alert-overflow-*.jsonl`: events that found the engine's queue full (a storm while the database
is slow), considered as soon as the queue has drained (or at the next start). `alerts-rejected-*.jsonl`
/ `alert-events-rejected-*.jsonl`: rows or events the database refused for their content, kept for a
human and never retried blindly. Files are written whole, fsynced and renamed into place, so a crash
never leaves half a file to replay. With no folder (or a failed write) the records are logged in full
instead: nothing is dropped without a trace.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from app.events.types import NewEvent
from app.kit.spill import SpillDir
from app.metrics import ALERTS_DROPPED

log = logging.getLogger("argus.alerts")
PENDING = "alert-pending"
OVERFLOW = "alert-overflow"


class AlertSpill:
    def __init__(self, folder: Path | None) -> None:
        self.folder = folder  # None: records are only logged (in full)
        self._dir = SpillDir(folder) if folder is not None else None
        self.rejected = 0  # rows and events written to a rejected file instead of the outbox
        self.spilled = 0  # events left at shutdown, kept for the next start
        self.overflowed = 0  # events that found the queue full, kept in a file until it drained
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

    def keep_overflow(self, events: list[NewEvent]) -> bool:
        """Events the full queue could not take: kept for `replay(OVERFLOW)` once it drained. False
        when they could only be logged (no folder, a failed write): nothing is left to replay."""
        path = self._write(OVERFLOW, [e.to_json() for e in events])
        if path is None:
            ALERTS_DROPPED.labels(reason="overflow").inc(len(events))
            return False
        self.overflowed += len(events)
        log.warning("alert queue full: %d events kept in %s until it drains", len(events), path)
        return True

    def has(self, prefix: str) -> bool:
        return self._dir is not None and bool(self._dir.files(prefix))

    async def replay(
        self,
        handle: Callable[[list[NewEvent]], Awaitable[None]],
        batch: int,
        prefixes: tuple[str, ...] = (PENDING, OVERFLOW),
    ) -> None:
        """Hand the kept events to `handle` in batches, oldest file first; a file goes once handled."""
        if self._dir is None:
            return

        async def replay_file(path: Path, lines: list[str]) -> bool:
            try:
                events = [NewEvent.from_json(json.loads(line)) for line in lines]
            except (ValueError, KeyError, TypeError):
                log.exception("unreadable alert spill file %s left in place", path)
                return False
            for i in range(0, len(events), batch):
                await handle(events[i : i + batch])
            self.replayed += len(events)
            log.info("replayed %d events from %s", len(events), path)
            return True

        for prefix in prefixes:
            try:
                await self._dir.replay(prefix, replay_file)
            except OSError:
                log.exception("alert spill files %s-* could not be read; left in place", prefix)

    def _write(self, prefix: str, records: list[dict[str, Any]]) -> Path | None:
        """Write records as JSONL (durable, atomic); on no folder or a failed write, log them in full."""
        if self._dir is not None:
            try:
                return self._dir.write(prefix, records)
            except OSError:
                log.exception("could not write %s files under %s", prefix, self.folder)
        for record in records:
            log.error("%s: %s", prefix, json.dumps(record, default=str))
        return None
