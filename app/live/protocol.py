"""The /ws/live wire format: client messages (pydantic) and the binary frame header (struct)."""

from __future__ import annotations

import struct
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

# Binary frame message = header + JPEG bytes. Little-endian, no padding, 28 bytes:
#   u16 version (1) | u16 header length (28) | u32 camera id | u64 sequence
#   | f64 capture time (epoch seconds) | u16 width | u16 height
# Clients should slice the JPEG at `header length`, so later versions can append fields.
FRAME_HEADER = struct.Struct("<HHIQdHH")
FRAME_VERSION = 1
MIN_FPS, MAX_FPS = 1.0, 10.0
MAX_IDS = 256  # one subscribe message may name at most this many cameras


def pack_frame_header(camera_id: int, seq: int, captured_at: float, width: int, height: int) -> bytes:
    return FRAME_HEADER.pack(FRAME_VERSION, FRAME_HEADER.size, camera_id, seq, captured_at, width, height)


def unpack_frame(message: bytes) -> tuple[dict[str, Any], bytes]:
    """(header fields, JPEG bytes): the inverse of the server's framing, for Python clients and tests."""
    version, size, camera_id, seq, captured_at, width, height = FRAME_HEADER.unpack_from(message)
    header = {
        "version": version,
        "camera_id": camera_id,
        "seq": seq,
        "captured_at": captured_at,
        "width": width,
        "height": height,
    }
    return header, message[size:]


CameraIds = Annotated[list[Annotated[int, Field(ge=1, lt=2**32)]], Field(min_length=1, max_length=MAX_IDS)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Subscribe(_Message):
    type: Literal["subscribe"]
    camera_ids: CameraIds
    fps: float | None = Field(None, ge=MIN_FPS, le=MAX_FPS, description="default: ARGUS_LIVE_FPS")


class Unsubscribe(_Message):
    type: Literal["unsubscribe"]
    camera_ids: CameraIds


class Ping(_Message):
    type: Literal["ping"]


ClientMessage = Annotated[Subscribe | Unsubscribe | Ping, Field(discriminator="type")]
_adapter: TypeAdapter[Subscribe | Unsubscribe | Ping] = TypeAdapter(ClientMessage)


class ProtocolError(ValueError):
    """A client message the server cannot act on; becomes a {"type": "error"} reply."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        return {"type": "error", "code": self.code, "message": str(self), **self.extra}


def parse_client_message(text: str) -> Subscribe | Unsubscribe | Ping:
    """Validate one text message; raises ProtocolError naming the offending field."""
    try:
        return _adapter.validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        if first["type"] == "json_invalid":
            raise ProtocolError("invalid_json", "message is not valid JSON") from None
        if first["type"] == "union_tag_invalid" or first["type"] == "union_tag_not_found":
            raise ProtocolError(
                "unknown_type", "type must be one of: subscribe, unsubscribe, ping", field="type"
            ) from None
        # loc starts with the union tag (e.g. "subscribe.camera_ids.0"); drop it for the field name
        field = ".".join(str(p) for p in first["loc"][1:]) or where
        raise ProtocolError("invalid_message", f"{field}: {first['msg']}", field=field) from None
