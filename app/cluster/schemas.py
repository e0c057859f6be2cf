"""Cluster API bodies: GET /api/nodes, POST /api/cameras/{id}/move."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class NodeRead(BaseModel):
    name: str
    state: Literal["up", "down"] = Field(description="down: no heartbeat within ARGUS_LEASE_TTL_S")
    capacity: float = Field(description="ARGUS_NODE_CAPACITY: its share of the cameras relative to others")
    cameras: list[int] = Field(description="ids of the cameras it holds a live lease on")
    load: float = Field(description="cameras / capacity")


class CameraMove(BaseModel):
    node: str = Field(min_length=1, max_length=255, description="the name of a node that is up")


class CameraMoved(BaseModel):
    camera_id: int
    node: str = Field(description="the node asked to take the camera")
    from_node: str | None = Field(description="the node that held it when asked (None: it was free)")
