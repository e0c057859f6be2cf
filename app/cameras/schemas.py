"""Camera API schemas. URLs are validated here and masked on the way out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

from app.kit.redact import mask_url
from app.kit.schemas import Schema, check_json, json_limits, json_size, stripped_name
from app.kit.urls import camera_url_kind

DropPolicyName = Literal["latest", "every_nth", "keyframe_burst"]
DecodePolicyName = Literal["gated", "keyframes", "all"]
RtspTransport = Literal["tcp", "udp"]
RecordMode = Literal["off", "events", "continuous"]
MAX_OPTIONS_BYTES = 16_384  # analyzer and VAD options: free JSON, stored on the camera row
MAX_ANALYZERS = 16


def check_camera_url(url: str) -> str:
    """Syntax only (no filesystem): a stream URL, or a local path the service checks against the media
    directory (`app.kit.urls.validate_camera_url`). Control characters and whitespace are refused."""
    camera_url_kind(url)
    return url


class VadOptions(BaseModel):
    """Options of the built-in VAD analyzer; extra keys go to the analyzer, which validates them."""

    model_config = ConfigDict(extra="allow", strict=True)

    enabled: bool = True
    threshold: float = Field(
        3.0, gt=0, le=100, description="motion z-score while learning, then learned rarity (3: 1 in 1000)"
    )

    @model_validator(mode="after")
    def _bounded_extras(self) -> VadOptions:
        """Extra keys are free JSON stored on the camera and served back: bounded like any free JSON."""
        if self.model_extra:
            check_json(self.model_extra)
            if json_size(self.model_extra) > MAX_OPTIONS_BYTES:
                raise ValueError(f"vad options are larger than {MAX_OPTIONS_BYTES} bytes of JSON")
        return self


class RecordOptions(BaseModel):
    """What video a camera keeps: a clip per event (default), every minute, or none."""

    model_config = ConfigDict(extra="forbid", strict=True)

    mode: RecordMode = Field("events", description="off, events (a clip per event) or continuous")
    retain_days: int = Field(7, ge=1, le=3650, description="clips and segments older than this are deleted")


class AnalyzerSpec(BaseModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[\w.:-]+$", examples=["detector"])
    options: Annotated[dict[str, Any], json_limits(MAX_OPTIONS_BYTES)] = Field(
        default_factory=dict, description="free JSON for the analyzer: at most 16 KB and 32 levels deep"
    )


NodeName = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[\w.-]+$")]
PINNED = "several nodes (ARGUS_REDIS_URL): only this node may run the camera (one node: ignored)"


class CameraBase(BaseModel):
    # strict: `enabled: 0` or `analysis_fps: false` are client bugs, not values to coerce (a float takes
    # an int); subclasses' model_config merges with this one
    model_config = ConfigDict(strict=True)

    @field_validator("url", check_fields=False)
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else check_camera_url(v)

    @field_validator("name", check_fields=False)
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return stripped_name(v)


class CameraCreate(CameraBase):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "lobby",
                    "url": "rtsp://admin:secret@10.0.0.5:554/stream1",
                    "analysis_fps": 5,
                    "drop_policy": "latest",
                    "vad": {"threshold": 3.0},
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=100)
    url: str = Field(max_length=2048, description="rtsp(s)://, http(s):// (MJPEG) or a local file path")
    enabled: bool = True
    analysis_fps: float = Field(5.0, ge=0.2, le=30)
    drop_policy: DropPolicyName = "latest"
    drop_every_n: int = Field(3, ge=1, le=1000, description="with drop_policy every_nth: analyse 1 in N")
    vad: VadOptions = Field(default_factory=VadOptions)
    analyzers: list[AnalyzerSpec] = Field(
        default_factory=list, max_length=MAX_ANALYZERS, description="analyzers beyond VAD"
    )
    decode: DecodePolicyName = Field(
        "gated",
        description="gated: decode only while something moves or someone needs pixels (keyframes while "
        "calm); keyframes: keyframes only unless pixels are needed; all: every frame",
    )
    rtsp_transport: RtspTransport = Field("tcp", description="RTSP interleaved over TCP, or UDP")
    pre_roll_s: float = Field(5.0, ge=0, le=60, description="video kept before an event starts")
    post_roll_s: float = Field(5.0, ge=0, le=300, description="video kept after an event ends")
    record: RecordOptions = Field(default_factory=RecordOptions)
    pinned_node: NodeName | None = Field(None, description=PINNED)


class CameraUpdate(CameraBase):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"analysis_fps": 2}]})

    name: str | None = Field(None, min_length=1, max_length=100)
    url: str | None = Field(None, max_length=2048)
    enabled: bool | None = None
    analysis_fps: float | None = Field(None, ge=0.2, le=30)
    drop_policy: DropPolicyName | None = None
    drop_every_n: int | None = Field(None, ge=1, le=1000)
    vad: VadOptions | None = None
    analyzers: list[AnalyzerSpec] | None = Field(None, max_length=MAX_ANALYZERS)
    decode: DecodePolicyName | None = None
    rtsp_transport: RtspTransport | None = None
    pre_roll_s: float | None = Field(None, ge=0, le=60)
    post_roll_s: float | None = Field(None, ge=0, le=300)
    record: RecordOptions | None = None
    pinned_node: NodeName | None = Field(None, description=f"{PINNED}; null unpins it")


class CameraRead(Schema):
    id: int
    name: str
    url: str
    enabled: bool
    analysis_fps: float
    drop_policy: str
    drop_every_n: int
    vad: dict[str, Any]
    analyzers: list[dict[str, Any]]
    decode: str = "gated"
    rtsp_transport: str = "tcp"
    pre_roll_s: float = 5.0
    post_roll_s: float = 5.0
    record: RecordOptions = Field(default_factory=RecordOptions)
    pinned_node: str | None = None
    created_at: datetime
    updated_at: datetime
    state: str | None = None
    node: str | None = Field(None, description="the node running it (cluster mode: its lease holder)")

    @field_serializer("url")
    def _masked(self, url: str) -> str:
        return mask_url(url)


class CameraStatus(BaseModel):
    camera_id: int
    node: str | None = Field(None, description="the node running it (cluster mode: its lease holder)")
    state: Literal["connecting", "streaming", "reconnecting", "offline", "stopped"]
    fps_in: float
    fps_analyzed: float
    frames_in: int = 0
    frames_analyzed: int = 0
    frames_dropped: dict[str, int] = Field(default_factory=dict)
    reconnects: int = 0
    last_frame_at: datetime | None = None
    last_error: str | None = None
    analyzers: list[str] = Field(default_factory=list)
    gate: Literal["calm", "active"] | None = Field(None, description="activity gate (decode=gated)")
    decode: str | None = None
    decoded_fps: float = 0.0
    packets_per_s: float = 0.0
    bytes_per_s: float = 0.0
    gop_s: float | None = Field(None, description="seconds between keyframes, as measured")
    vad: dict[str, float | int] | None = Field(
        None, description="the VAD's learned normality: learning (0..1), learned_s, learn_s, model_bytes"
    )
    detector: dict[str, Any] | None = Field(
        None,
        description="the detector's line counts ({line: {direction: {class: n}}}), mode and passes "
        "(frames searched full / by regions / idle, region runs)",
    )
