"""/api/api-keys bodies: a key is listed by name and prefix; the key itself is shown once, at creation."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.kit.schemas import Schema, stripped_name


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{"name": "ops"}]})

    name: str = Field(min_length=1, max_length=100)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str | None:
        return stripped_name(v)


class ApiKeyRead(Schema):
    id: int
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart")
    created_at: datetime
    last_used_at: datetime | None = Field(description="Recorded at most once a minute per key")
    revoked: bool


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The key itself: shown this once, only its hash is stored")
