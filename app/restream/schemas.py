"""Restream API bodies: what to publish where (`url` write as given, read back masked)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from app.kit.redact import mask_url
from app.kit.schemas import Schema
from app.kit.urls import check_network_url

Overlay = Literal["boxes", "zones", "timestamp", "score"]
OVERLAYS: tuple[Overlay, ...] = ("boxes", "zones", "timestamp", "score")
SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps")


class RestreamConfig(Schema):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"url": "rtsp://127.0.0.1:8554/lobby-annotated", "fps": 5, "width": 640,
                 "overlays": ["boxes", "zones", "timestamp", "score"]}
            ]
        },
    )  # fmt: skip

    url: str = Field(
        max_length=2048, description="rtsp://, rtsps://, rtmp:// or rtmps:// (MediaMTX, go2rtc, ...)"
    )
    fps: float = Field(
        5.0, ge=1, le=10, description="frames per second published (at most the live view's 10)"
    )
    width: int = Field(640, ge=160, le=1920, description="published width; the height keeps the aspect ratio")
    overlays: list[Overlay] = Field(default_factory=lambda: list(OVERLAYS))
    enabled: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        check_network_url(v, SCHEMES, "url")
        return v

    @field_validator("overlays")
    @classmethod
    def _unique(cls, v: list[Overlay]) -> list[Overlay]:
        return list(dict.fromkeys(v))


class RestreamRead(RestreamConfig):
    model_config = ConfigDict(extra="ignore", from_attributes=True)

    camera_id: int

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return mask_url(v)
