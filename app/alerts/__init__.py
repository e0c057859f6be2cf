"""Alerts: events -> rules -> dedup -> outbox rows -> signed webhook deliveries (at least once)."""

from app.alerts.dispatcher import DispatchPolicy, WebhookDispatcher
from app.alerts.engine import AlertEngine

__all__ = ["AlertEngine", "DispatchPolicy", "WebhookDispatcher"]
