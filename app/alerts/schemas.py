"""Alert API schemas: webhooks (the secret is write-only), alert rules, alert deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from app.alerts.signing import standard_key
from app.kit.redact import mask_url
from app.kit.schemas import DbId, Schema, reject_nul, stripped_name
from app.kit.severity import Severity
from app.kit.urls import validate_webhook_url as check_webhook_url

StatusName = Literal["pending", "retrying", "delivered", "dead"]
# The strict models below still take a severity as its string ("high"); nothing else becomes one.
SeverityIn = Annotated[Severity, Field(strict=False)]
# Rules are read on every event: their lists stay short, and an event type is at most what ingest accepts.
MAX_LIST = 256
RuleEventType = Annotated[str, Field(min_length=1, max_length=64)]


def validate_webhook_url(url: str) -> str:
    """http(s), a host, no control characters or whitespace, at most 2048 characters. Denied networks
    are the service's check (it knows the settings), and the transport's, on the resolved address."""
    return check_webhook_url(url)


class WebhookFields(BaseModel):
    # strict: `enabled: 0` or `timeout_s: true` are client bugs, not values to coerce (a float takes an int)
    model_config = ConfigDict(allow_inf_nan=False, strict=True)

    @field_validator("url", check_fields=False)
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else validate_webhook_url(v)

    @field_validator("name", check_fields=False)
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return stripped_name(v)

    @field_validator("secret", check_fields=False)
    @classmethod
    def _secret(cls, v: str | None) -> str | None:
        if v is None:
            return None
        standard_key(reject_nul(v, "secret"))  # a `whsec_` secret must decode: ValueError -> 422
        return v


class WebhookCreate(WebhookFields):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "pager",
                    "url": "https://hooks.example.com/argus",
                    "secret": "a-long-random-shared-secret",
                    "enabled": True,
                    "timeout_s": 5,
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=100)
    url: str = Field(max_length=2048, description="http:// or https:// only")
    secret: str = Field(min_length=8, max_length=256, description="HMAC key; write-only, never returned")
    enabled: bool = True
    timeout_s: float = Field(5.0, gt=0, le=60, description="per-request timeout")


class WebhookUpdate(WebhookFields):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"enabled": False}]})

    name: str | None = Field(None, min_length=1, max_length=100)
    url: str | None = Field(None, max_length=2048)
    secret: str | None = Field(None, min_length=8, max_length=256)
    enabled: bool | None = None
    timeout_s: float | None = Field(None, gt=0, le=60)


class WebhookRead(Schema):
    id: int
    name: str
    url: str
    enabled: bool
    timeout_s: float
    created_at: datetime
    updated_at: datetime

    @field_serializer("url")
    def _mask(self, url: str) -> str:
        return mask_url(url)


class WebhookTestResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"ok": True, "status_code": 200, "error": None, "elapsed_ms": 12.5}]}
    )

    ok: bool
    status_code: int | None = Field(None, description="the receiver's HTTP status; null if unreachable")
    error: str | None = None
    elapsed_ms: float


class AlertRuleFields(BaseModel):
    # strict: `enabled: 0` or `camera_ids: [true]` are client bugs, not values to coerce
    model_config = ConfigDict(allow_inf_nan=False, strict=True)

    @field_validator("name", check_fields=False)
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return stripped_name(v)

    @field_validator("event_types", check_fields=False)
    @classmethod
    def _types(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [reject_nul(t, "event type") for t in v]

    @field_validator("camera_ids", "webhook_ids", "event_types", check_fields=False)
    @classmethod
    def _unique(cls, v: list[Any] | None) -> list[Any] | None:
        return None if v is None else list(dict.fromkeys(v))


class AlertRuleCreate(AlertRuleFields):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "lobby anomalies",
                    "camera_ids": [1],
                    "event_types": ["anomaly"],
                    "min_severity": "high",
                    "webhook_ids": [1],
                    "dedup_window_s": 15,
                    "enabled": True,
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=100)
    camera_ids: list[DbId] = Field(
        default_factory=list, max_length=MAX_LIST, description="empty = every camera"
    )
    event_types: list[RuleEventType] = Field(
        default_factory=list, max_length=MAX_LIST, description="empty = every type"
    )
    min_severity: SeverityIn = Severity.high
    webhook_ids: list[DbId] = Field(
        min_length=1, max_length=MAX_LIST, description="webhooks that receive this rule's alerts"
    )
    dedup_window_s: float | None = Field(
        None, ge=0, le=86_400, description="one alert per camera and type within this window (default 15)"
    )
    enabled: bool = True


class AlertRuleUpdate(AlertRuleFields):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"min_severity": "critical"}]})

    name: str | None = Field(None, min_length=1, max_length=100)
    camera_ids: list[DbId] | None = Field(None, max_length=MAX_LIST)
    event_types: list[RuleEventType] | None = Field(None, max_length=MAX_LIST)
    min_severity: SeverityIn | None = None
    webhook_ids: list[DbId] | None = Field(None, min_length=1, max_length=MAX_LIST)
    dedup_window_s: float | None = Field(None, ge=0, le=86_400)
    enabled: bool | None = None


class AlertRuleRead(Schema):
    id: int
    name: str
    camera_ids: list[int]
    event_types: list[str]
    min_severity: Severity
    webhook_ids: list[int]
    dedup_window_s: float
    enabled: bool
    created_at: datetime
    updated_at: datetime


class AlertRead(Schema):
    """One alert's delivery to one webhook (an outbox row)."""

    id: str = Field(description="also the Idempotency-Key of its delivery")
    rule_id: int | None
    webhook_id: int
    event_id: str
    camera_id: int | None
    event_type: str
    severity: Severity
    priority: Literal["immediate", "digest"]
    status: StatusName
    attempts: int
    suppressed_count: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    digest_id: str | None = Field(description="Idempotency-Key of the digest POST that carries it")
    created_at: datetime
    payload: dict[str, Any]
