"""Every table, re-exported so Alembic sees the whole metadata through `app.models.Base`."""

from app.models.api_key import ApiKey
from app.models.base import Base, TimestampMixin, UTCDateTime, utcnow
from app.models.camera import Camera
from app.models.event import Event

__all__ = ["ApiKey", "Base", "Camera", "Event", "TimestampMixin", "UTCDateTime", "utcnow"]
