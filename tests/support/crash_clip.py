"""Run as a process that dies mid-clip: `python -m tests.support.crash_clip SOURCE OUT SECONDS [GARBAGE]`.

Writes SECONDS of SOURCE's packets to OUT with the real PartWriter, optionally appends GARBAGE bytes of a
fragment that never finished, then SIGKILLs itself: no trailer, the `.writing` marker left behind.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from app.recording.part_writer import PartWriter
from tests.support.clip_media import camera_packets


def main() -> None:
    source, out, seconds = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
    garbage = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    packets = camera_packets(source)
    writer = PartWriter(out, packets[0])
    for packet in packets:
        if packet.at - packets[0].at >= seconds:
            break
        writer.write(packet)
    if garbage:
        with open(out, "ab") as f:
            f.write((garbage + 8).to_bytes(4, "big") + b"moof" + b"\0" * (garbage // 2))
            f.flush()
            os.fsync(f.fileno())
    print(writer.readable, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    main()
