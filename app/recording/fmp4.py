"""Fragmented MP4 at the box level: how much of a file a reader can be given, and crash repair.

A fragmented MP4 (`ftyp`, `moov` with no samples, then `moof`+`mdat` pairs) is valid up to the end of
any complete `mdat` that follows a `moof`: that prefix is what the API serves of a clip still being
written, and what a crash repair truncates a file to. Only box headers are read (16 bytes per box).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_HEADER = struct.Struct(">I4s")
_LARGE = struct.Struct(">Q")


@dataclass
class FragmentScanner:
    """Incremental: call `advance()` as the file grows; it reads each box header once."""

    offset: int = 0  # where the next unread top-level box starts
    complete: int = 0  # end of the last complete moof+mdat pair (0: nothing playable yet)
    fragments: int = 0
    _moof: bool = False

    def advance(self, f: BinaryIO, size: int) -> int:
        """Scan the boxes wholly inside `size` bytes of `f`; returns `complete`."""
        while self.offset + _HEADER.size <= size:
            f.seek(self.offset)
            head = f.read(16)
            if len(head) < _HEADER.size:
                break
            length, kind = _HEADER.unpack_from(head)
            if length == 1 and len(head) == 16:
                (length,) = _LARGE.unpack_from(head, 8)
            if length < _HEADER.size or self.offset + length > size:
                break  # not written yet (or size 0: "to the end", which a writer never leaves behind)
            self._box(kind, self.offset + length)
            self.offset += length
        return self.complete

    def _box(self, kind: bytes, end: int) -> None:
        if kind == b"moof":
            self._moof = True
        elif kind == b"mdat" and self._moof:
            self._moof = False
            self.fragments += 1
            self.complete = end
        elif kind == b"mfra" and self.fragments:
            self.complete = end  # the random-access index the trailer appends


def scan(path: Path) -> FragmentScanner:
    scanner = FragmentScanner()
    with open(path, "rb") as f:
        scanner.advance(f, os.fstat(f.fileno()).st_size)
    return scanner


def repair(path: Path) -> int:
    """Cut a file whose writer died to its last complete fragment, or delete it when it has none.
    Returns the number of fragments kept (0: the file is gone)."""
    try:
        scanner = scan(path)
    except FileNotFoundError:
        return 0
    if scanner.fragments == 0:
        path.unlink(missing_ok=True)
        return 0
    if path.stat().st_size != scanner.complete:
        os.truncate(path, scanner.complete)
    return scanner.fragments
