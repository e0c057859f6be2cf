"""Client-named files: inside a root, regular, bounded, non-blocking; FileReader times out on its own
threads instead of the shared pool."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from app.kit.files import FileReader, FileRefused, check_regular_file, read_regular_file


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    folder.mkdir()
    (folder / "a.json").write_text("{}")
    return folder


def test_reads_a_regular_file_inside(root: Path) -> None:
    path, data = read_regular_file("a.json", root, 100)
    assert path == root.resolve() / "a.json" and data == b"{}"
    assert check_regular_file(root / "a.json", root, 100) == path


def test_refusals(root: Path, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("x")
    (root / "link").symlink_to(tmp_path / "secret")
    os.mkfifo(root / "fifo")
    (root / "big").write_bytes(b"x" * 101)
    for name in [
        "../secret",
        "link",
        "fifo",
        "big",
        "missing",
        "/dev/zero",
        "/etc/passwd",
        "x" * 300,
        "a\x00b",
    ]:
        started = time.monotonic()
        with pytest.raises(FileRefused):
            read_regular_file(name, root, 100)
        assert time.monotonic() - started < 1, name[:40]  # a FIFO opens non-blocking


async def test_a_hanging_call_times_out_without_touching_the_shared_pool() -> None:
    reader = FileReader(timeout_s=0.2, threads=1)
    release = threading.Event()
    with pytest.raises(FileRefused):
        await reader.run(release.wait, 5)
    with pytest.raises(FileRefused):  # its only thread is still stuck: refused at once, not queued
        await reader.run(lambda: 1)
    assert await asyncio.to_thread(lambda: "shared pool free") == "shared pool free"
    release.set()
    await asyncio.sleep(0.05)
    assert await reader.run(lambda: 2) == 2


async def test_exceptions_come_back_to_the_caller() -> None:
    def fail() -> None:
        raise ValueError("bad manifest")

    with pytest.raises(ValueError, match="bad manifest"):
        await FileReader().run(fail)
