"""CameraConfig: the runtime's frozen copy of a camera row (ORM rows stay in their session)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.kit.redact import mask_url
from app.models import Camera


@dataclass(frozen=True, slots=True)
class CameraConfig:
    id: int
    name: str
    url: str
    enabled: bool = True
    analysis_fps: float = 5.0
    drop_policy: str = "latest"
    drop_every_n: int = 3
    vad: dict[str, Any] = field(default_factory=dict)
    analyzers: tuple[dict[str, Any], ...] = ()
    decode: str = "gated"
    rtsp_transport: str = "tcp"
    pre_roll_s: float = 5.0
    post_roll_s: float = 5.0
    record: dict[str, Any] = field(default_factory=dict)
    pinned_node: str | None = None
    fence: int | None = None  # cluster mode: this node's lease token, stamped on every event it writes

    @classmethod
    def from_row(cls, row: Camera) -> CameraConfig:
        return cls(
            id=row.id,
            name=row.name,
            url=row.url,
            enabled=row.enabled,
            analysis_fps=row.analysis_fps,
            drop_policy=row.drop_policy,
            drop_every_n=row.drop_every_n,
            vad=dict(row.vad or {}),
            analyzers=tuple(row.analyzers or ()),
            decode=row.decode or "gated",
            rtsp_transport=row.rtsp_transport or "tcp",
            pre_roll_s=row.pre_roll_s if row.pre_roll_s is not None else 5.0,
            post_roll_s=row.post_roll_s if row.post_roll_s is not None else 5.0,
            record=dict(row.record or {}),
            pinned_node=row.pinned_node,
        )

    @property
    def record_mode(self) -> str:
        return str(self.record.get("mode", "events"))

    @property
    def retain_days(self) -> int:
        return int(self.record.get("retain_days", 7))

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    def chain(self) -> list[dict[str, Any]]:
        """The analyzer chain: VAD first (unless disabled), then the camera's extra analyzers."""
        specs: list[dict[str, Any]] = []
        vad = {k: v for k, v in self.vad.items() if k != "enabled"}
        if self.vad.get("enabled", True):
            specs.append({"name": "vad", "options": vad})
        specs.extend({"name": a["name"], "options": a.get("options") or {}} for a in self.analyzers)
        return specs
