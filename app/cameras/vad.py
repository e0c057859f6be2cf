"""The cameras' side of the VAD's learned normality: its status, a reset, and the normality picture.

The model lives in the running pipeline's VAD analyzer (and in its file under DATA_DIR/vad/ while the
camera is stopped); these helpers find it in either place.
"""

from __future__ import annotations

import asyncio
import time

import cv2
from pydantic import BaseModel, Field

from app.analyzers.normality import ModelStore, NormalityModel, render
from app.analyzers.vad import VadAnalyzer
from app.cameras.manager import MultiCameraManager
from app.config import Settings


class VadLearning(BaseModel):
    learning: float = Field(description="share of vad.learn_s learned, 0..1; at 1 the learned model decides")
    learned_s: float = Field(description="seconds of video the normality model has learned from")
    learn_s: float
    model_bytes: int = Field(description="memory the camera's model holds")


def running_vad(manager: MultiCameraManager, camera_id: int) -> VadAnalyzer | None:
    pipeline = manager.get(camera_id)
    if pipeline is None:
        return None
    return next((a for a in pipeline.analyzers if isinstance(a, VadAnalyzer)), None)


def learning(manager: MultiCameraManager, camera_id: int) -> VadLearning | None:
    vad = running_vad(manager, camera_id)
    if vad is None or not vad.options.normality:
        return None
    model = vad.model
    return VadLearning(learning=round(vad.learning_progress, 4), learned_s=round(model.learned_s, 1),
                       learn_s=vad.options.learn_s, model_bytes=model.nbytes)  # fmt: skip


def reset(manager: MultiCameraManager, settings: Settings, camera_id: int) -> None:
    """Forget the camera's normality: the running analyzer's and the saved file."""
    vad = running_vad(manager, camera_id)
    if vad is not None:
        vad.reset()
    ModelStore(settings.data_dir / "vad").forget(camera_id)


async def normality_png(manager: MultiCameraManager, settings: Settings, camera_id: int) -> bytes:
    vad = running_vad(manager, camera_id)
    pipeline = manager.get(camera_id)
    frame = pipeline.source.latest() if pipeline is not None else None
    model = vad.model if vad is not None else ModelStore(settings.data_dir / "vad").load(camera_id)

    def draw() -> bytes:
        picture = render(model or NormalityModel(), None if frame is None else frame.image, time.time())
        ok, png = cv2.imencode(".png", picture)
        if not ok:
            raise RuntimeError("PNG encoding failed")
        return png.tobytes()

    return await asyncio.to_thread(draw)
