"""`argus demo`: two generated demo cameras, a migrated database and an API key, with no download.

The videos are drawn with numpy and written with OpenCV's own mp4v encoder (this OpenCV build writes
and reads it back; H.264 writing is not available): a "moving" street-like scene where objects cross
in bursts every 25-35 s, so the motion VAD fires now and then, and a "quiet" one with only sensor
noise. Both are 640x360 at 15 FPS, 90 s, looped forever by the file source.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import select

from app.config import Settings
from app.kit.db import create_engine, create_sessionmaker
from app.migrate import upgrade_async
from app.models import Camera

log = logging.getLogger("argus.demo")

WIDTH, HEIGHT, FPS, SECONDS = 640, 360, 15, 90
# Motion bursts (start s, duration s): first one early so an event shows up within the first minute.
BURSTS = ((15.0, 5.0), (45.0, 4.0), (72.0, 6.0))
NOISE_FRAMES = 8  # noise patterns cycled: per-frame random noise would cost seconds to generate
KEY_FILE = "demo_api_key"
CAMERAS = (("demo-moving", "moving.mp4"), ("demo-quiet", "quiet.mp4"))


async def prepare_demo(settings: Settings, *, seconds: int = SECONDS, detector: bool = False) -> Settings:
    """Make the demo media, schema, cameras and key; return settings carrying the key to serve with.

    Idempotent: existing playable videos, cameras (by name) and the persisted key are kept. The videos
    live in the media directory, the only place local files are accepted as cameras from.
    """
    demo_dir = demo_media_dir(settings)
    demo_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: demo_dir / file for name, file in CAMERAS}
    await asyncio.to_thread(ensure_videos, paths["demo-moving"], paths["demo-quiet"], seconds)
    await upgrade_async(settings.database_url)
    await ensure_cameras(settings, paths)
    if detector:
        await ensure_detector_demo(settings)
        # yolov3-tiny takes 50-300 ms a frame on a small loaded CPU: a 150 ms budget would skip most frames
        budget = max(settings.analyzer_budget_ms, DETECTOR_BUDGET_MS)
        settings = settings.model_copy(update={"analyzer_budget_ms": budget})
    settings, key = ensure_api_key(settings)
    print_welcome(settings, key)
    return settings


def demo_media_dir(settings: Settings) -> Path:
    return settings.resolved_media_dir / "demo"


def ensure_videos(moving: Path, quiet: Path, seconds: int = SECONDS) -> None:
    for path, frames in ((moving, moving_scene(seconds)), (quiet, quiet_scene(seconds))):
        if not _playable(path):
            log.info("generating demo video %s", path)
            write_video(path, frames)


async def ensure_cameras(settings: Settings, paths: dict[str, Path]) -> None:
    engine = create_engine(settings.database_url)
    try:
        async with create_sessionmaker(engine).begin() as session:
            rows = await session.scalars(select(Camera).where(Camera.name.in_(paths)))
            existing = {row.name: row for row in rows}
            for name, path in paths.items():
                row = existing.get(name)
                if row is None:
                    session.add(Camera(name=name, url=str(path), analysis_fps=5.0, drop_policy="latest"))
                elif row.url == str(settings.data_dir / "demo" / path.name):  # made before ARGUS_MEDIA_DIR
                    row.url = str(path)
    finally:
        await engine.dispose()


DETECTOR_MODEL = "yolov3-tiny"
DETECTOR_BUDGET_MS = 1000.0
STREET = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")  # Debian opencv-doc: real pedestrians
STREET_CAMERA = "demo-street"


async def ensure_detector_demo(settings: Settings, street: Path = STREET) -> None:
    """`argus demo --detector`: install yolov3-tiny (the `coco` extra) and detect people on every demo
    camera, plus a real street camera from vtest.avi when Debian's opencv-doc is installed."""
    street_copy = await asyncio.to_thread(_detector_files, settings, street)
    analyzer = {
        "name": "detector",
        "options": {"model": DETECTOR_MODEL, "classes": ["person", "bicycle", "car"]},
    }
    cameras = {name: demo_media_dir(settings) / file for name, file in CAMERAS}
    if street_copy is not None:
        cameras[STREET_CAMERA] = street_copy
    engine = create_engine(settings.database_url)
    try:
        async with create_sessionmaker(engine).begin() as session:
            rows = {r.name: r for r in await session.scalars(select(Camera).where(Camera.name.in_(cameras)))}
            for name, path in cameras.items():
                row = rows.get(name)
                if row is None:
                    row = Camera(name=name, url=str(path), analysis_fps=5.0, drop_policy="latest")
                    session.add(row)
                if not any(a.get("name") == "detector" for a in row.analyzers or []):
                    row.analyzers = [*(row.analyzers or []), analyzer]
    finally:
        await engine.dispose()


def _detector_files(settings: Settings, street: Path) -> Path | None:
    """Install the model when missing; copy the street footage into the media dir (None without it)."""
    from app.inference.install import InstallError, install_known

    models_dir = settings.resolved_models_dir
    if not (models_dir / f"{DETECTOR_MODEL}.json").is_file():
        try:
            install_known(models_dir, DETECTOR_MODEL)
        except InstallError as exc:
            raise SystemExit(f"argus demo --detector: {exc}") from None
    if not street.is_file():
        log.warning("no real footage for the detector demo: apt-get install opencv-doc adds a street camera")
        return None
    copy = demo_media_dir(settings) / "street.mp4"
    if not _playable(copy):
        encode_h264(street, copy)
    return copy


def encode_h264(source: Path, target: Path, max_frames: int | None = None) -> None:
    """Re-encode to H.264 in MP4 (vtest.avi is MS-MPEG4, which event clips cannot be cut from), as a real
    camera would send it: 2-s GOP, no B-frames. About 10 s of CPU for vtest's 80 s, once."""
    import av

    tmp = target.with_suffix(".part.mp4")
    with av.open(str(source)) as src, av.open(str(tmp), "w") as out:
        video = src.streams.video[0]
        rate = round(video.average_rate or 10)
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
        stream.options = {"g": str(2 * rate), "bf": "0", "preset": "veryfast", "crf": "23"}
        for i, frame in enumerate(src.decode(video)):
            if max_frames is not None and i >= max_frames:
                break
            image = frame.reformat(format="yuv420p")
            image.pts = i
            out.mux(stream.encode(image))
        out.mux(stream.encode())
    tmp.replace(target)


def ensure_api_key(settings: Settings) -> tuple[Settings, str]:
    """Use the first configured key; else a key persisted under DATA_DIR, so restarts keep it."""
    if settings.static_api_keys:
        return settings, settings.static_api_keys[0]
    path = settings.data_dir / KEY_FILE
    key = path.read_text().strip() if path.is_file() else ""
    if not key:
        key = "argus_demo_" + secrets.token_urlsafe(24)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
    return settings.model_copy(update={"api_keys": key}), key


def print_welcome(settings: Settings, key: str) -> None:
    base = f"http://{settings.host}:{settings.port}"
    print(
        f"\nArgus demo: two cameras ({', '.join(n for n, _ in CAMERAS)}) from {demo_media_dir(settings)}\n"
        f"  dashboard: {base}/  (paste the key below)\n"
        f"  API docs:  {base}/docs\n"
        f"  API key:   {key}\n"
        f'  try:       curl -H "Authorization: Bearer {key}" {base}/api/cameras\n'
        f'             curl -H "Authorization: Bearer {key}" "{base}/api/events?limit=5"\n',
        flush=True,
    )


# -- video generation --


def write_video(path: Path, frames: Iterator[np.ndarray]) -> None:
    """Write to a temporary name first, so an interrupted run never leaves a half file behind."""
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write mp4v video to {tmp}")
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
    tmp.replace(path)


def _playable(path: Path) -> bool:
    if not path.is_file() or path.stat().st_size == 0:
        return False
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        return bool(cap.isOpened() and cap.grab())
    finally:
        cap.release()


def _noisy(base: np.ndarray, sigma: float, seed: int) -> list[np.ndarray]:
    """A few copies of the background with sensor-like noise, cycled frame after frame."""
    rng = np.random.default_rng(seed)
    return [
        np.clip(base.astype(np.int16) + rng.normal(0, sigma, (*base.shape[:2], 1)), 0, 255).astype(np.uint8)
        for _ in range(NOISE_FRAMES)
    ]


def _background(label: str) -> np.ndarray:
    """A street seen from above: sky, buildings, pavement and a road with lane marks."""
    img = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    img[:120] = (170, 150, 120)
    img[120:200] = (105, 110, 115)
    img[200:330] = (70, 70, 72)
    img[330:] = (120, 125, 125)
    for x, w, h, colour in (
        (20, 90, 90, (90, 100, 140)),
        (150, 120, 70, (120, 120, 150)),
        (330, 80, 100, (80, 90, 110)),
        (470, 150, 80, (130, 110, 100)),
    ):
        cv2.rectangle(img, (x, 200 - h), (x + w, 200), colour, -1)
        for wy in range(200 - h + 10, 195, 22):
            for wx in range(x + 8, x + w - 12, 20):
                cv2.rectangle(img, (wx, wy), (wx + 10, wy + 12), (60, 160, 200), -1)
    for x in range(0, WIDTH, 60):
        cv2.rectangle(img, (x, 263), (x + 30, 267), (220, 220, 220), -1)
    cv2.putText(img, label, (10, 350), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (235, 235, 235), 1, cv2.LINE_AA)
    return img


def moving_scene(seconds: int = SECONDS) -> Iterator[np.ndarray]:
    backgrounds = _noisy(_background("ARGUS DEMO - STREET"), sigma=2.0, seed=7)
    for i in range(FPS * seconds):
        t = i / FPS
        frame = backgrounds[i % NOISE_FRAMES]
        for start, duration in BURSTS:
            if start <= t < start + duration:
                frame = frame.copy()
                _draw_crossing(frame, (t - start) / duration, start)
        yield frame


def _draw_crossing(frame: np.ndarray, progress: float, seed: float) -> None:
    """Two cars on the road and a pedestrian on the pavement, crossing in opposite directions."""
    rng = np.random.default_rng(int(seed))
    span = WIDTH + 200
    car_x = int(-100 + progress * span)
    colour = tuple(int(c) for c in rng.integers(40, 255, 3))
    cv2.rectangle(frame, (car_x, 215), (car_x + 110, 255), colour, -1)
    cv2.rectangle(frame, (car_x + 20, 205), (car_x + 80, 220), (40, 40, 40), -1)
    van_x = int(WIDTH + 100 - progress * span * 1.2)
    cv2.rectangle(frame, (van_x, 272), (van_x + 140, 322), (230, 230, 235), -1)
    walker_x = int(40 + progress * 300)
    step = 6 if int(progress * 40) % 2 else -6
    cv2.circle(frame, (walker_x, 300 - 2), 8, (60, 80, 200), -1)
    cv2.rectangle(frame, (walker_x - 7, 306), (walker_x + 7, 334), (160, 60, 60), -1)
    cv2.line(frame, (walker_x, 334), (walker_x + step, 352), (40, 40, 40), 3)


def quiet_scene(seconds: int = SECONDS) -> Iterator[np.ndarray]:
    backgrounds = _noisy(_background("ARGUS DEMO - QUIET"), sigma=1.5, seed=11)
    for i in range(FPS * seconds):
        yield backgrounds[i % NOISE_FRAMES]
