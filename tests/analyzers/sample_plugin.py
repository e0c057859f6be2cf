"""A third-party-style analyzer, loaded through a real importlib.metadata.EntryPoint in test_registry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from app.analyzers.base import Finding, Observation
from app.analyzers.registry import AnalyzerContext
from app.stream.frame import Frame


class BrightnessOptions(BaseModel):
    level: float = Field(100.0, ge=0, le=255)


class Brightness:
    """Mean brightness of the frame; depends on nothing. A bare class is a valid factory."""

    name = "brightness"
    depends: tuple[str, ...] = ()
    options_model = BrightnessOptions

    def __init__(self, options: Mapping[str, Any], ctx: AnalyzerContext) -> None:
        self.level = float(options["level"])
        self.camera_id = ctx.camera_id

    async def process(self, frame: Frame, deps: Mapping[str, Observation]) -> Observation:
        mean = float(frame.image.mean())
        return Observation(self.name, score=mean, data={"bright": mean >= self.level})

    def finish(self) -> tuple[Finding, ...]:
        return ()


def broken_factory() -> None:
    raise RuntimeError("never called: the module attribute below does not exist")
