"""MQTT connection options from `ARGUS_MQTT_URL`: `mqtt://user:pass@host:1883` or `mqtts://` (TLS)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from app.kit.redact import mask_url
from app.kit.urls import UrlError, check_network_url

SCHEMES = ("mqtt", "mqtts")
_TOPIC_FORBIDDEN = set("+#\x00")


@dataclass(frozen=True, slots=True)
class MqttOptions:
    url: str = field(repr=False)  # as configured: holds the password, never shown (use `masked_url`)
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    prefix: str = "argus"
    discovery_prefix: str = "homeassistant"
    queue_max: int = 10_000

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)


def parse_mqtt_url(url: str, field_name: str = "ARGUS_MQTT_URL") -> MqttOptions:
    """UrlError (its message never holds the URL) for anything but mqtt(s)://[user[:pass]@]host[:port]."""
    parts = check_network_url(url, SCHEMES, field_name)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UrlError(f"{field_name} takes no path, query or fragment")
    tls = parts.scheme.lower() == "mqtts"
    return MqttOptions(
        url=url,
        host=parts.hostname or "",
        port=parts.port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def check_topic_prefix(prefix: str, field_name: str, *, allow_empty: bool = False) -> str:
    """A topic prefix Argus can publish under: no wildcards, no leading or trailing `/`."""
    if not prefix:
        if allow_empty:
            return prefix
        raise ValueError(f"{field_name} must not be empty")
    if _TOPIC_FORBIDDEN & set(prefix) or prefix.startswith("/") or prefix.endswith("/"):
        raise ValueError(f"{field_name} must not hold + or # or start or end with /")
    return prefix
