"""CPU per annotated re-stream: JPEG decode + scale + overlays + H.264 encode (libx264 ultrafast,
zerolatency), per frame, for moving textured content at several widths; no network (the muxer writes to
memory), so it is the cost Argus adds per stream.

    .venv/bin/python bench/restream.py [--frames 200]
"""

from __future__ import annotations

import argparse
import fractions
import io
import time

import av
import cv2
import numpy as np

from app.restream.overlay import Annotations, draw
from app.restream.restreamer import decode_scaled

OVERLAYS = ("boxes", "zones", "timestamp", "score")


def scene(n: int, width: int = 960, height: int = 540) -> list[bytes]:
    """n JPEGs of a textured picture panning a few pixels a frame (what the live hub hands over)."""
    rng = np.random.default_rng(7)
    big = cv2.GaussianBlur((rng.random((height + 200, width + 400, 3)) * 255).astype(np.uint8), (9, 9), 3)
    return [
        cv2.imencode(".jpg", big[(i % 100) : (i % 100) + height, (i * 3) % 400 : (i * 3) % 400 + width])[
            1
        ].tobytes()
        for i in range(n)
    ]


def measure(jpegs: list[bytes], width: int, fps: int) -> tuple[float, float]:
    """(decode+draw ms, encode ms) of CPU per frame, all threads of this process."""
    notes = Annotations(
        boxes=[{"box": [300, 200, 500, 420], "label": "person", "score": 0.91}],
        source_size=(1280, 720),
        zones=[[(0.1, 0.6), (0.6, 0.6), (0.6, 0.95), (0.1, 0.95)]],
        score=3.4,
    )
    images, t0 = [], time.process_time()
    for jpeg in jpegs:
        image = decode_scaled(jpeg, width)
        assert image is not None
        draw(image, notes, OVERLAYS)
        images.append(image)
    prepare = (time.process_time() - t0) / len(jpegs) * 1000
    container = av.open(io.BytesIO(), "w", format="matroska")
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = images[0].shape[1], images[0].shape[0], "yuv420p"
    stream.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(fps)}
    t0 = time.process_time()
    for i, image in enumerate(images):
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts, frame.time_base = i, fractions.Fraction(1, fps)
        for packet in stream.encode(frame):
            container.mux(packet)
    encode = (time.process_time() - t0) / len(images) * 1000
    container.close()
    return prepare, encode


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args()
    jpegs = scene(args.frames)
    print("width  decode+draw ms  encode ms  total ms/frame  % of a core at 5 fps  at 10 fps")
    for width in (320, 640, 1280):
        prepare, encode = measure(jpegs, width, 5)
        total = prepare + encode
        at5, at10 = total * 5 / 10, total * 10 / 10  # ms per frame x frames per s / 1000 ms, in %
        print(f"{width:5d}  {prepare:14.2f}  {encode:9.2f}  {total:14.2f}  {at5:20.1f}  {at10:9.1f}")


if __name__ == "__main__":
    main()
