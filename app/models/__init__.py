"""Every table, re-exported so Alembic sees the whole metadata through `app.models.Base`."""

from app.models.alert import Alert, AlertPriority, AlertStatus
from app.models.alert_rule import AlertRule
from app.models.api_key import ApiKey
from app.models.base import Base, TimestampMixin, UTCDateTime, utcnow
from app.models.camera import Camera
from app.models.camera_lease import CameraLease
from app.models.event import Event
from app.models.node import Node
from app.models.recording import Recording
from app.models.restream import Restream
from app.models.webhook import Webhook

__all__ = [
    "Alert",
    "AlertPriority",
    "AlertRule",
    "AlertStatus",
    "ApiKey",
    "Base",
    "Camera",
    "CameraLease",
    "Event",
    "Node",
    "Recording",
    "Restream",
    "TimestampMixin",
    "UTCDateTime",
    "Webhook",
    "utcnow",
]
