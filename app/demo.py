"""`argus demo`: two generated demo cameras, a migrated database and an API key, with no download.

The videos are drawn with numpy and written with OpenCV's own mp4v encoder (this OpenCV build writes
and reads it back; H.264 writing is not available): a "moving" street scene and a "quiet" one with
only sensor noise. Both are 640x360 at 15 FPS, 4 minutes, looped forever by the file source.

The street: cars pass on the road every few seconds both ways and people walk along the pavement; the
demo camera learns that as normal within `STREET_LEARN_S` (its VAD alerts on the first cars meanwhile,
through the motion z-score). From 3:10 a car drives along the pavement and from 3:35 a person crosses
the lawn: those still alert once the model has learned, naming "where" as the reason.
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

from app.cameras.repository import CameraRepository
from app.config import Settings
from app.kit.db import create_engine, create_sessionmaker
from app.migrate import upgrade_async
from app.models import Camera

log = logging.getLogger("argus.demo")

WIDTH, HEIGHT, FPS, SECONDS = 640, 360, 15, 240
TRAFFIC_FROM_S, TRAFFIC_EVERY_S, CROSSING_S = 12.0, 8.0, 4.0  # quiet first, so the first car alerts at once
WALKS = ((30.0, 12.0), (100.0, 12.0), (150.0, 12.0), (222.0, 12.0))  # people on the left pavement (start, s)
PAVEMENT_CAR = (190.0, 6.0)  # the anomalies: a car driving along the pavement ...
LAWN_CROSSING = (215.0, 6.0)  # ... and a person crossing the lawn
STREET_LEARN_S = 150.0  # the street camera's vad.learn_s: learned before the anomalies come
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
            rows = await CameraRepository(session).by_names(paths)
            existing = {row.name: row for row in rows}
            for name, path in paths.items():
                row = existing.get(name)
                if row is None:
                    vad = {"learn_s": STREET_LEARN_S} if name == "demo-moving" else {}
                    session.add(
                        Camera(name=name, url=str(path), analysis_fps=5.0, drop_policy="latest", vad=vad)
                    )
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
    camera (region mode: a calm camera runs no detector), plus a real street camera from vtest.avi when
    Debian's opencv-doc is installed."""
    street_copy = await asyncio.to_thread(_detector_files, settings, street)
    analyzer = {
        "name": "detector",
        "options": {"model": DETECTOR_MODEL, "classes": ["person", "bicycle", "car"], "mode": "regions"},
    }
    cameras = {name: demo_media_dir(settings) / file for name, file in CAMERAS}
    if street_copy is not None:
        cameras[STREET_CAMERA] = street_copy
    engine = create_engine(settings.database_url)
    try:
        async with create_sessionmaker(engine).begin() as session:
            rows = {r.name: r for r in await CameraRepository(session).by_names(cameras)}
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
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
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
    base = _background("ARGUS DEMO - STREET")
    cv2.rectangle(base, (0, 0), (WIDTH, 95), (70, 140, 80), -1)  # a lawn in front of the buildings
    backgrounds = _noisy(base, sigma=2.0, seed=7)
    for i in range(FPS * seconds):
        t = i / FPS
        frame = backgrounds[i % NOISE_FRAMES].copy()
        _draw_traffic(frame, t)
        for start, duration in WALKS:
            if start <= t < start + duration:
                _draw_walker(frame, 30 + (t - start) / duration * 230, 312)  # to the bus stop, and wait
        start, duration = PAVEMENT_CAR
        if start <= t < start + duration:
            _draw_car(frame, int(WIDTH + 60 - (t - start) / duration * (WIDTH + 180)), 325, (40, 40, 200))
        start, duration = LAWN_CROSSING
        if start <= t < start + duration:
            p = (t - start) / duration
            _draw_walker(frame, 200 + p * 240, 10 + p * 70)
        yield frame


def _draw_traffic(frame: np.ndarray, t: float) -> None:
    """Cars east-bound on the upper lane and vans west-bound on the lower one, one every few seconds."""
    if t < TRAFFIC_FROM_S:
        return
    k, phase = divmod(t - TRAFFIC_FROM_S, TRAFFIC_EVERY_S)
    if phase < CROSSING_S:
        colour = tuple(int(c) for c in np.random.default_rng(int(k)).integers(40, 255, 3))
        _draw_car(frame, int(-120 + phase / CROSSING_S * (WIDTH + 240)), 215, colour)
    phase = (phase + TRAFFIC_EVERY_S / 2) % TRAFFIC_EVERY_S
    if phase < CROSSING_S:
        x = int(WIDTH + 100 - phase / CROSSING_S * (WIDTH + 260))
        cv2.rectangle(frame, (x, 268), (x + 140, 302), (230, 230, 235), -1)


def _draw_car(frame: np.ndarray, x: int, y: int, colour: tuple[int, ...]) -> None:
    cv2.rectangle(frame, (x, y), (x + 110, y + 40), colour, -1)
    cv2.rectangle(frame, (x + 20, y - 10), (x + 80, y + 5), (40, 40, 40), -1)


def _draw_walker(frame: np.ndarray, x: float, y: float) -> None:
    """A person seen from the side: head, body, a swinging leg (`y` is the head's centre)."""
    xi, yi = int(x), int(y)
    step = 6 if int(x / 12) % 2 else -6
    cv2.circle(frame, (xi, yi), 8, (60, 80, 200), -1)
    cv2.rectangle(frame, (xi - 7, yi + 8), (xi + 7, yi + 36), (160, 60, 60), -1)
    cv2.line(frame, (xi, yi + 36), (xi + step, yi + 50), (40, 40, 40), 3)


def quiet_scene(seconds: int = SECONDS) -> Iterator[np.ndarray]:
    backgrounds = _noisy(_background("ARGUS DEMO - QUIET"), sigma=1.5, seed=11)
    for i in range(FPS * seconds):
        yield backgrounds[i % NOISE_FRAMES]
