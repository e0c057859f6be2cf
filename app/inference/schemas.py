"""/api/models request and response bodies."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator


class Percentiles(BaseModel):
    p50: float | None = None
    p95: float | None = None


class ModelRead(BaseModel):
    name: str
    kind: Literal["vad", "detector", "score"]
    path: str
    input_shape: list[int | None] = Field(description="batch dim first; null = dynamic")
    dynamic_batch: bool = Field(description="true when the graph batches across cameras")
    loaded: bool
    loads: int
    provider: str | None = Field(None, examples=["CPUExecutionProvider"])
    calls: int = Field(description="inference requests served")
    runs: int = Field(description="model runs (a batch is one run)")
    errors: int
    batch_histogram: dict[str, int] = Field(description="batch size -> runs", examples=[{"1": 3, "8": 120}])
    queue_wait_ms: Percentiles
    run_ms: Percentiles
    queue_depth: int
    cameras: list[int] = Field(description="cameras whose analyzers use this model")


class ModelRegister(BaseModel):
    """Either `manifest_path` (a JSON manifest on the server) or an inline `manifest` object."""

    manifest_path: str | None = Field(None, examples=["/srv/models/yolov8n.json"])
    manifest: dict[str, Any] | None = Field(
        None,
        examples=[
            {
                "name": "yolov8n",
                "kind": "detector",
                "path": "/srv/models/yolov8n.onnx",
                "input_size": [640, 640],
                "layout": "yolov8",
                "class_names": ["person", "bicycle", "car"],
            }
        ],
    )

    @model_validator(mode="after")
    def _one_source(self) -> ModelRegister:
        if (self.manifest_path is None) == (self.manifest is None):
            raise ValueError("give exactly one of manifest_path or manifest")
        return self
