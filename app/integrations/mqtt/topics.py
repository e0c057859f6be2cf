"""What Argus says on MQTT: topic names, event messages, and Home Assistant discovery configs (pure)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from app import __version__
from app.events.types import NewEvent, Phase

_SLUG = re.compile(r"[^a-z0-9_-]+")
PHASE_TYPES = {Phase.open: "new", Phase.update: "update", Phase.close: "end"}  # NVR users' words
# HA device classes for the built-in event types; any other type is a plain binary sensor.
DEVICE_CLASSES = {"anomaly": "problem", "object": "occupancy", "motion": "motion"}
RESERVED_LEAVES = {"state", "fps", "snapshot", "enabled"}


@dataclass(frozen=True, slots=True)
class CameraInfo:
    """A camera as the bridge sees it (a snapshot from the cameras domain, never an ORM row)."""

    id: int
    name: str
    enabled: bool
    state: str
    fps: float
    event_types: tuple[str, ...] = ()

    @property
    def slug(self) -> str:
        return slug(self.name)


def slug(name: str) -> str:
    """A camera name fit for one topic level and an HA object id: `Front Door/2` -> `front_door_2`."""
    return _SLUG.sub("_", name.strip().lower()).strip("_") or "camera"


def sensor_leaf(event_type: str) -> str:
    """The topic level of an event type's binary sensor; never one of the camera's other topics."""
    leaf = slug(event_type)
    return f"{leaf}_event" if leaf in RESERVED_LEAVES else leaf


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str
    discovery_prefix: str

    @property
    def available(self) -> str:
        return f"{self.prefix}/available"

    @property
    def events(self) -> str:
        return f"{self.prefix}/events"

    @property
    def enabled_set_filter(self) -> str:
        return f"{self.prefix}/+/enabled/set"

    def camera(self, cam: str, leaf: str) -> str:
        return f"{self.prefix}/{cam}/{leaf}"

    def camera_of_set(self, topic: str) -> str | None:
        """`argus/<cam>/enabled/set` -> `<cam>`."""
        head, sep, rest = topic.partition(f"{self.prefix}/")
        parts = rest.split("/")
        if head or not sep or len(parts) != 3 or parts[1:] != ["enabled", "set"]:
            return None
        return parts[0]

    def discovery(self, component: str, cam: str, object_id: str) -> str:
        return f"{self.discovery_prefix}/{component}/argus_{cam}/{object_id}/config"


def event_view(event: NewEvent, camera: str | None, public_url: str = "") -> dict[str, Any]:
    """One event as MQTT consumers see it: no file paths, a snapshot link when there is a snapshot."""
    body = event.to_json()
    body.pop("snapshot_path", None)
    body.pop("phase", None)
    body["camera"] = camera
    body["has_snapshot"] = bool(event.snapshot_path)
    body["snapshot_url"] = f"{public_url}/api/events/{event.id}/snapshot.jpg" if event.snapshot_path else None
    return body


def event_message(event: NewEvent, before: dict[str, Any] | None, after: dict[str, Any]) -> bytes:
    return dumps({"type": PHASE_TYPES[event.phase], "before": before, "after": after})


def discovery_configs(topics: Topics, cam: CameraInfo) -> dict[str, bytes]:
    """Discovery topic -> retained config for one camera: a device with a binary sensor per event type,
    fps and state sensors, an enable switch and a camera entity fed by the snapshot topic."""
    s = cam.slug
    device = {
        "identifiers": [f"argus_{s}"],
        "name": cam.name,
        "manufacturer": "Argus",
        "model": "camera",
        "sw_version": __version__,
    }
    common = {"availability_topic": topics.available, "device": device}
    configs: dict[str, dict[str, Any]] = {
        topics.discovery("sensor", s, "state"): {
            "name": "State", "state_topic": topics.camera(s, "state"), "icon": "mdi:cctv",
        },
        topics.discovery("sensor", s, "fps"): {
            "name": "FPS", "state_topic": topics.camera(s, "fps"), "unit_of_measurement": "fps",
            "state_class": "measurement",
        },
        topics.discovery("switch", s, "enabled"): {
            "name": "Enabled", "state_topic": topics.camera(s, "enabled/state"),
            "command_topic": topics.camera(s, "enabled/set"), "icon": "mdi:cctv",
        },
        topics.discovery("camera", s, "snapshot"): {
            "name": "Last event", "topic": topics.camera(s, "snapshot"),
        },
    }  # fmt: skip
    for event_type in cam.event_types:
        leaf = sensor_leaf(event_type)
        sensor: dict[str, Any] = {"name": event_type.capitalize(), "state_topic": topics.camera(s, leaf)}
        if event_type in DEVICE_CLASSES:
            sensor["device_class"] = DEVICE_CLASSES[event_type]
        configs[topics.discovery("binary_sensor", s, leaf)] = sensor
    for topic, config in configs.items():
        object_id = topic.rsplit("/", 2)[-2]
        config.update(common, unique_id=f"argus_{s}_{object_id}", object_id=f"argus_{s}_{object_id}")
    return {topic: dumps(config) for topic, config in configs.items()}
