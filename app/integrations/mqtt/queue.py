"""The MQTT outbox in memory: every message waits here until the broker acknowledged it (QoS 1).

Ordered messages (events, and each ON/OFF of a binary sensor, so a short episode still shows) keep
their order and are bounded: past `max_events`, the oldest is dropped and counted (a late OFF beats a lost
one). `latest_only` messages (state, fps, discovery, snapshots) are the current value of their topic: a
newer one replaces a pending one, so they never pile up and never count against the bound.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("argus.mqtt")


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    retain: bool = False
    latest_only: bool = False  # a newer message to the same topic replaces this one while it waits


class MessageQueue:
    def __init__(self, max_events: int) -> None:
        self.max_events = max_events
        self.dropped = 0  # event messages dropped because the queue was full (counted, logged by the owner)
        self._items: OrderedDict[Hashable, Message] = OrderedDict()
        self._events = 0
        self._seq = itertools.count()
        self._ready = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, message: Message, *, front: bool = False, if_absent: bool = False) -> bool:
        """Queue `message`; False when an event had to be dropped to make room. `if_absent` keeps a
        pending latest-only message of the same topic where it is (republishing state after a reconnect)."""
        fits = True
        if message.latest_only:
            key: Hashable = ("latest", message.topic)
            if if_absent and key in self._items:
                return True
            self._items.pop(key, None)
        else:
            key = next(self._seq)
            if self._events >= self.max_events:
                fits = self._drop_oldest_event()
            self._events += 1
        self._items[key] = message
        if front:
            self._items.move_to_end(key, last=False)
        self._ready.set()
        self._empty.clear()
        return fits

    async def head(self) -> tuple[Hashable, Message]:
        """The oldest message, waiting for one; it stays queued until done()."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return next(iter(self._items.items()))

    def done(self, key: Hashable, message: Message) -> None:
        """Acknowledged: remove it, unless a newer value of its topic replaced it meanwhile."""
        if self._items.get(key) is message:
            del self._items[key]
            if not message.latest_only:
                self._events -= 1
            if not self._items:
                self._empty.set()

    async def wait_empty(self) -> None:
        await self._empty.wait()

    def ordered(self) -> list[Message]:
        """The waiting events and sensor changes, in order (latest-only values are derived again)."""
        return [m for m in self._items.values() if not m.latest_only]

    def _drop_oldest_event(self) -> bool:
        for key, message in self._items.items():
            if not message.latest_only:
                del self._items[key]
                self._events -= 1
                self.dropped += 1
                return False
        return True


def save_pending(path: Path, messages: list[Message]) -> int:
    """Write `messages` (JSON lines) for the next start, replacing the file atomically; 0: nothing."""
    if not messages:
        path.unlink(missing_ok=True)
        return 0
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as f:
        for m in messages:
            payload = base64.b64encode(m.payload).decode()
            f.write(json.dumps({"topic": m.topic, "payload": payload, "retain": m.retain}) + "\n")
    os.replace(tmp, path)
    return len(messages)


def load_pending(path: Path) -> list[Message]:
    """What save_pending() kept, in order; the file is removed (its messages are queued again)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    messages = []
    for line in lines:
        try:
            raw = json.loads(line)
            messages.append(Message(str(raw["topic"]), base64.b64decode(raw["payload"]), bool(raw["retain"])))
        except (ValueError, KeyError, TypeError):
            log.error("mqtt: skipped an unreadable line of %s", path)
    path.unlink(missing_ok=True)
    return messages
