"""Reading a file a client named, safely: inside one folder, a regular file, bounded, never hanging.

`open()` on a named pipe blocks until a writer comes, `/dev/zero` never ends, a symlink can point
anywhere, and different errors tell a client which files exist. Here a path is resolved (symlinks
followed) and must stay inside its root, it is opened non-blocking and checked with fstat on the open
descriptor (so the file checked is the file read), and every refusal raises the same FileRefused.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class FileRefused(Exception):
    """Not a usable file: outside the root, missing, not regular, too large, unreadable or too slow."""


def inside(path: str | Path, root: Path) -> Path:
    """`path` (relative paths are taken from `root`) resolved, symlinks followed; it must exist and stay
    inside `root`."""
    try:
        base = root.expanduser().resolve(strict=True)
        full = (base / Path(path)).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        raise FileRefused from None
    if not full.is_relative_to(base):
        raise FileRefused
    return full


def _open_regular(path: Path, max_bytes: int, nofollow: bool = True) -> int:
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if nofollow:  # the path was resolved: a symlink here now would be a swap since the check
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)  # O_NONBLOCK: a FIFO opens at once instead of waiting for a writer
    except (OSError, ValueError):
        raise FileRefused from None
    try:
        info = os.fstat(fd)
    except OSError:
        os.close(fd)
        raise FileRefused from None
    if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
        os.close(fd)
        raise FileRefused
    return fd


def check_regular_file(path: str | Path, root: Path, max_bytes: int) -> Path:
    """The resolved path of a regular file inside `root` of at most `max_bytes`; FileRefused otherwise."""
    full = inside(path, root)
    os.close(_open_regular(full, max_bytes))
    return full


def read_regular_file(path: str | Path, root: Path | None, max_bytes: int) -> tuple[Path, bytes]:
    """(resolved path, content) of a regular file (inside `root` when given) of at most `max_bytes`."""
    full = inside(path, root) if root is not None else Path(path)
    fd = _open_regular(full, max_bytes, nofollow=root is not None)
    try:
        with os.fdopen(fd, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError:
        raise FileRefused from None
    if len(data) > max_bytes:  # grew since fstat
        raise FileRefused
    return full, data


class FileReader:
    """Runs file checks on their own daemon threads with a timeout, never on asyncio's shared pool: a
    path on a hung mount then stalls one of these threads (at most `threads`), not live view, snapshots
    or deletes, and never blocks the process's exit."""

    def __init__(self, timeout_s: float = 5.0, threads: int = 4, name: str = "argus.files") -> None:
        self.timeout_s = timeout_s
        self.name = name
        self._slots = threading.BoundedSemaphore(threads)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on a thread of its own; FileRefused when it takes longer than the timeout or every
        thread is still busy (stuck) with earlier calls."""
        if not self._slots.acquire(blocking=False):
            raise FileRefused
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def work() -> None:
            try:
                outcome: tuple[bool, Any] = (True, fn(*args))
            except BaseException as exc:  # handed to the awaiting coroutine
                outcome = (False, exc)
            finally:
                self._slots.release()
            with contextlib.suppress(RuntimeError):  # the loop may be gone after a timeout
                loop.call_soon_threadsafe(_settle, future, outcome)

        threading.Thread(target=work, name=self.name, daemon=True).start()
        try:
            return await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            raise FileRefused from None


def _settle(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if future.done():
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
