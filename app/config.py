"""Settings: every key of .env.example, read from ARGUS_* environment variables."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.integrations.mqtt.options import MqttOptions, check_topic_prefix, parse_mqtt_url
from app.kit.logs import LogFormat
from app.kit.severity import Severity
from app.kit.urls import IPNetwork, parse_networks, validate_service_url


class AlertSettings(BaseModel):
    """The alert and webhook settings as one group, `settings.alerts`. Read from the same flat variables
    as ever (ARGUS_DIGEST_INTERVAL_S, ARGUS_WEBHOOK_ATTEMPTS, ...: .env files keep working); a field
    named like a Settings field is copied from it."""

    model_config = ConfigDict(frozen=True)

    dedup_window_s: float
    digest_interval_s: float
    webhook_timeout_s: float
    webhook_max_backoff_s: float
    webhook_dead_after_s: float
    webhook_attempts: int  # HTTP attempts per claim
    webhook_lease_s: float
    webhook_concurrency: int
    webhook_breaker_threshold: int
    webhook_breaker_reset_s: float
    public_url: str
    webhook_denied_networks: tuple[IPNetwork, ...]  # ARGUS_WEBHOOK_DENY_NETWORKS, parsed
    spill_dir: Path  # DATA_DIR/spill: events and rows the outbox could not take


# Settings where an empty value means something of its own (not "use the default").
_EMPTY_IS_A_VALUE = frozenset({"mqtt_discovery_prefix"})


class Settings(BaseSettings):
    # hide_input_in_errors: a bad URL setting must not print its password at start-up
    model_config = SettingsConfigDict(
        env_prefix="ARGUS_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    # Server
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    log_format: LogFormat = "text"  # json: one JSON object per line (app/kit/logs.py)
    database_url: str = ""  # empty: DATA_DIR/argus.db, so it follows DATA_DIR (and its volume)
    data_dir: Path = Path("./data")
    api_keys: str = ""  # comma-separated static keys, in addition to keys stored in the api_keys table
    auto_migrate: bool = True  # upgrade an embedded SQLite schema at start (PostgreSQL never auto-migrates)
    max_body_bytes: int = Field(1_048_576, ge=1024)  # larger request bodies get 413 before being parsed

    # Cameras and sources
    reconnect_initial_delay: float = Field(1.0, gt=0)
    reconnect_max_delay: float = Field(10.0, gt=0)
    open_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(5.0, gt=0)
    stale_frame_s: float = Field(5.0, gt=0)  # watchdog: no new frame for this long = reconnect
    analysis_width: int = Field(320, ge=32)  # analysed frames are converted at this width, not full size
    ring_max_mb: int = Field(64, ge=1)  # per camera: the packet ring's byte bound (pre-roll for clips)
    gate_hold_s: float = Field(5.0, gt=0)  # decode=gated: keep decoding this long after the last motion
    gate_min_hint_bytes: int = Field(400, ge=0)  # a P-frame smaller than this never hints at motion
    gate_calm_check_s: float = Field(30.0, gt=0)  # informative packet sizes: a keyframe checked this often
    decode_threads: int = Field(1, ge=0, le=16)  # FFmpeg decoder threads per camera (0 = FFmpeg decides)
    media_dir: Path | None = None  # local video files usable as cameras (demo, tests); default DATA_DIR/media

    # Inference
    models_dir: Path | None = None  # default DATA_DIR/models
    batch_max_size: int = Field(16, ge=1)
    batch_max_wait_ms: float = Field(4.0, ge=0)
    batch_calibrate: bool = True  # time each model's batch sizes at load; cap batches where they stop paying
    batch_runs_in_flight: int = Field(2, ge=1)  # batches of one model run side by side, cores/N threads each
    analyzer_budget_ms: float = Field(150.0, gt=0)
    trace_level: Literal["off", "minimal", "normal", "verbose"] = "off"

    # Event logger
    event_flush_size: int = Field(10, ge=1)
    event_flush_interval_s: float = Field(1.0, gt=0)
    event_buffer_max: int = Field(10_000, ge=10)
    ingest_max_batch: int = Field(256, ge=1)  # POST /api/events committed together (1: a commit each)
    ingest_max_wait_ms: float = Field(2.0, ge=0)  # a lone ingest waits this long for others to join
    event_stream_heartbeat_s: float = Field(15.0, gt=0)  # GET /api/events/stream: a comment line this often

    # Alerts and webhooks
    dedup_window_s: float = Field(15.0, ge=0)
    digest_interval_s: float = Field(60.0, gt=0)
    webhook_timeout_s: float = Field(5.0, gt=0)
    webhook_max_backoff_s: float = Field(600.0, gt=0)
    webhook_dead_after_s: float = Field(86_400.0, gt=0)
    webhook_attempts: int = Field(3, ge=1)  # HTTP attempts per claim (tenacity) before the row is rescheduled
    webhook_lease_s: float = Field(120.0, gt=0)  # a claim held by a dead process is retaken after this
    webhook_concurrency: int = Field(32, ge=1)  # deliveries in flight at once
    webhook_breaker_threshold: int = Field(5, ge=1)  # failures in a row that open a webhook's breaker
    webhook_breaker_reset_s: float = Field(10.0, gt=0)  # first wait before probing an open breaker
    public_url: str = ""  # prefix for links in webhook payloads, e.g. https://argus.example.com
    # Webhooks never connect into these (checked on the resolved address); cloud metadata by default.
    webhook_deny_networks: str = "169.254.0.0/16,fe80::/10,fd00:ec2::/32"

    # Live view
    live_fps: float = Field(5.0, gt=0, le=30)
    live_jpeg_quality: int = Field(80, ge=10, le=100)
    live_max_width: int = Field(960, ge=64)
    live_stall_timeout_s: float = Field(10.0, gt=0)  # a viewer that takes no frame for this long is dropped

    # Recordings and media retention
    clip_max_s: float = Field(300.0, gt=0)  # an event clip longer than this continues in a next part file
    segment_s: float = Field(60.0, gt=0)  # continuous recording: a segment ends at a keyframe after this
    export_max_s: float = Field(3600.0, gt=0)  # longest span one export.mp4 may cover
    snapshot_retain_days: float = Field(30.0, gt=0)  # event snapshots older than this are deleted
    min_free_disk_mb: int = Field(1024, ge=0)  # below this much free space, the oldest media goes first
    retention_interval_s: float = Field(60.0, gt=0)  # how often retention runs and the disk floor is checked

    # VLM (optional; off when base_url is empty)
    vlm_base_url: str = ""
    vlm_model: str = "llava"
    vlm_api_key: str = ""
    vlm_timeout_s: float = Field(30.0, gt=0)
    vlm_min_severity: Severity = Severity.medium
    vlm_max_queue: int = Field(32, ge=1)

    # MQTT and Home Assistant (optional; off when mqtt_url is empty; docs/mqtt.md)
    mqtt_url: str = ""  # mqtt://user:pass@host:1883 or mqtts://...; the password is never shown
    mqtt_prefix: str = "argus"  # topics: <prefix>/events, <prefix>/<camera>/state, ...
    mqtt_discovery_prefix: str = "homeassistant"  # Home Assistant discovery topics; empty = no discovery
    mqtt_ca_file: Path | None = None  # mqtts://: CA bundle to trust (default: the system's)
    mqtt_queue_max: int = Field(10_000, ge=1)  # event messages kept while the broker is down (oldest dropped)

    @model_validator(mode="before")
    @classmethod
    def _empty_means_unset(cls, data: object) -> object:
        """`ARGUS_MODELS_DIR=` (as .env.example writes every key) is the default, not Path("") = the cwd."""
        if not isinstance(data, dict):
            return data
        return {
            k: v
            for k, v in data.items()
            if not (isinstance(v, str) and not v.strip() and k not in _EMPTY_IS_A_VALUE)
        }

    # Edge -> central forwarding (optional; off when forward_url is empty; docs/forwarding.md)
    forward_url: str = ""  # the central Argus's base URL, e.g. https://central.example.com
    forward_key: str = ""  # an API key of the central Argus
    forward_name: str = Field("", pattern=r"^[\w.-]{0,40}$")  # this site's name there (default: host name)
    forward_transport: Literal["websocket", "http"] = "websocket"  # http: batches (WebSockets blocked)
    forward_media: Literal["links", "snapshots"] = "links"  # snapshots: each event's JPEG goes along

    # Scale-out (optional; off while redis_url is empty: one node, as before; docs in README "Several nodes")
    node_name: str = Field(default_factory=socket.gethostname, max_length=255, pattern=r"^[\w.-]+$")
    redis_url: str = ""  # redis://host:6379/0: several nodes on one PostgreSQL + Redis (cluster mode)
    redis_prefix: str = Field("argus:", pattern=r"^[\w.:-]{1,64}$")  # Redis keys and channels of this cluster
    node_capacity: float = Field(1.0, gt=0)  # this node's share of the cameras, relative to the others
    lease_ttl_s: float = Field(10.0, ge=0.3)  # a camera lease not renewed for this long is taken over

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @model_validator(mode="after")
    def _forward_key(self) -> Settings:
        if self.forward_url and not self.forward_key:
            raise ValueError("ARGUS_FORWARD_URL needs ARGUS_FORWARD_KEY (an API key of the central Argus)")
        return self

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url.strip():
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir / 'argus.db'}"
        return self

    @field_validator("redis_url", mode="after")
    @classmethod
    def _cluster_needs_postgres(cls, v: str, info: ValidationInfo) -> str:
        if v and not str(info.data.get("database_url", "")).startswith("postgresql"):
            raise ValueError("several nodes need a shared PostgreSQL ARGUS_DATABASE_URL, not SQLite")
        return v

    @field_validator("public_url", "vlm_base_url", "forward_url", mode="after")
    @classmethod
    def _service_url(cls, v: str, info: ValidationInfo) -> str:
        return validate_service_url(v, f"ARGUS_{str(info.field_name).upper()}")

    @field_validator("mqtt_url", mode="after")
    @classmethod
    def _mqtt_url(cls, v: str) -> str:
        if v:
            parse_mqtt_url(v)
        return v

    @field_validator("mqtt_prefix", "mqtt_discovery_prefix", mode="after")
    @classmethod
    def _mqtt_prefix(cls, v: str, info: ValidationInfo) -> str:
        name = f"ARGUS_{str(info.field_name).upper()}"
        return check_topic_prefix(v, name, allow_empty=info.field_name == "mqtt_discovery_prefix")

    @property
    def mqtt(self) -> MqttOptions | None:
        if not self.mqtt_url:
            return None
        return replace(
            parse_mqtt_url(self.mqtt_url),
            ca_file=self.mqtt_ca_file,
            prefix=self.mqtt_prefix,
            discovery_prefix=self.mqtt_discovery_prefix,
            queue_max=self.mqtt_queue_max,
        )

    @field_validator("webhook_deny_networks", mode="after")
    @classmethod
    def _networks(cls, v: str) -> str:
        parse_networks(v)
        return v

    @property
    def webhook_denied_networks(self) -> tuple[IPNetwork, ...]:
        return parse_networks(self.webhook_deny_networks)

    @property
    def alerts(self) -> AlertSettings:
        """The alert group, built from the flat fields (a property: a model_copy'd Settings stays right)."""
        values = {name: getattr(self, name) for name in AlertSettings.model_fields if name != "spill_dir"}
        return AlertSettings(**values, spill_dir=self.data_dir / "spill")

    @property
    def resolved_media_dir(self) -> Path:
        return (self.media_dir or self.data_dir / "media").expanduser().resolve()

    @property
    def static_api_keys(self) -> list[str]:
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]

    @property
    def resolved_models_dir(self) -> Path:
        return (self.models_dir or self.data_dir / "models").expanduser().resolve()

    @property
    def cluster(self) -> bool:
        """Several nodes share the cameras (ARGUS_REDIS_URL set); False: one node, no cluster code runs."""
        return bool(self.redis_url)

    @property
    def lease_renew_s(self) -> float:
        return self.lease_ttl_s / 3

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
