"""SpillDir: files written whole and durable, replayed oldest first, removed only once handled."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.kit.spill import SpillDir


async def test_replay_hands_files_oldest_first_and_removes_each_once_handled(tmp_path: Path) -> None:
    spill = SpillDir(tmp_path / "spill")
    spill.write("events", [{"n": 1}, {"n": 2}])
    await spill.write_async("events", [{"n": 3}])
    spill.write("other", [{"n": 99}])
    seen: list[int] = []

    async def handle(path: Path, lines: list[str]) -> bool:
        seen.extend(json.loads(line)["n"] for line in lines)
        return True

    assert await spill.replay("events", handle) == 3
    assert seen == [1, 2, 3]
    assert spill.files("events") == [] and len(spill.files("other")) == 1
    assert not list((tmp_path / "spill").glob("*.tmp"))  # written under a temporary name, renamed


async def test_a_failing_handler_leaves_its_file_and_the_newer_ones(tmp_path: Path) -> None:
    spill = SpillDir(tmp_path)
    first = spill.write("events", [{"n": 1}])
    second = spill.write("events", [{"n": 2}])

    async def fail(path: Path, lines: list[str]) -> bool:
        raise OSError("database away")

    with pytest.raises(OSError):
        await spill.replay("events", fail)
    assert spill.files("events") == [first, second]


async def test_a_refused_file_stays_for_a_human_and_the_next_is_handled(tmp_path: Path) -> None:
    spill = SpillDir(tmp_path)
    bad = spill.write("events", [{"n": 1}])
    spill.write("events", [{"n": 2}])

    async def handle(path: Path, lines: list[str]) -> bool:
        return json.loads(lines[0])["n"] != 1

    assert await spill.replay("events", handle) == 1
    assert spill.files("events") == [bad]


def test_no_folder_means_no_files(tmp_path: Path) -> None:
    assert SpillDir(tmp_path / "absent").files("events") == []
