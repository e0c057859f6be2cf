"""Alert rules: validation and CRUD for webhooks and rules, alert listing and retry; no SQL, no HTTP."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts.outbox import OutboxRepository
from app.alerts.repository import AlertRuleRepository, WebhookRepository
from app.alerts.schemas import (
    AlertRuleCreate,
    AlertRuleUpdate,
    WebhookCreate,
    WebhookTestResult,
    WebhookUpdate,
)
from app.alerts.sender import Target, WebhookSender
from app.cameras.repository import CameraRepository
from app.errors import Conflict, Invalid, NotFound
from app.kit.redact import mask_url
from app.kit.repository import InvalidCursor
from app.kit.urls import IPNetwork, UrlError, validate_webhook_url
from app.models import Alert, AlertRule, AlertStatus, Webhook, utcnow


class AlertService:
    def __init__(
        self,
        session: AsyncSession,
        *,
        default_dedup_s: float = 15.0,
        dead_after_s: float = 86_400.0,
        deny_networks: Sequence[IPNetwork] = (),
    ):
        self.webhooks = WebhookRepository(session)
        self.rules = AlertRuleRepository(session)
        self.outbox = OutboxRepository(session)
        self.default_dedup_s = default_dedup_s
        self.dead_after = timedelta(seconds=dead_after_s)
        self.deny_networks = tuple(deny_networks)

    async def list_webhooks(self) -> Sequence[Webhook]:
        return await self.webhooks.list()

    async def get_webhook(self, webhook_id: int) -> Webhook:
        webhook = await self.webhooks.get(webhook_id)
        if webhook is None:
            raise NotFound("webhook", webhook_id)
        return webhook

    async def create_webhook(self, body: WebhookCreate) -> Webhook:
        self._check_destination(body.url)
        if await self.webhooks.get_by_name(body.name):
            raise Conflict(f"a webhook named {body.name!r} exists", field="name")
        return await self.webhooks.add(Webhook(**body.model_dump()))

    async def update_webhook(self, webhook_id: int, body: WebhookUpdate) -> Webhook:
        webhook = await self.get_webhook(webhook_id)
        changes = _changes(body)
        if "url" in changes and changes["url"] == mask_url(webhook.url):
            del changes["url"]  # sent back as GET shows it: unchanged, credentials kept
        if "url" in changes:
            self._check_destination(changes["url"])
        if (
            "name" in changes
            and changes["name"] != webhook.name
            and await self.webhooks.get_by_name(changes["name"])
        ):
            raise Conflict(f"a webhook named {changes['name']!r} exists", field="name")
        for key, value in changes.items():
            setattr(webhook, key, value)
        await self.webhooks.session.flush()
        return webhook

    def _check_destination(self, url: str) -> None:
        """A literal IP host inside ARGUS_WEBHOOK_DENY_NETWORKS is a 422 now; a hostname is checked on
        the address it resolves to at each delivery."""
        try:
            validate_webhook_url(url, self.deny_networks)
        except UrlError as exc:
            raise Invalid(str(exc), field="url") from None

    async def delete_webhook(self, webhook_id: int) -> None:
        webhook = await self.get_webhook(webhook_id)
        users = await self.rules.using_webhook(webhook_id)
        if users:
            names = ", ".join(repr(r.name) for r in users)
            raise Conflict(f"webhook {webhook_id} is used by alert rules {names}: remove it there first")
        await self.webhooks.delete(webhook)  # its outbox rows go with it (ON DELETE CASCADE)

    async def test_webhook(self, webhook_id: int, sender: WebhookSender) -> WebhookTestResult:
        webhook = await self.get_webhook(webhook_id)
        target = Target(webhook.id, webhook.name, webhook.url, webhook.secret, webhook.timeout_s)
        key = uuid.uuid4().hex
        payload = {
            "type": "test",
            "id": key,
            "created_at": utcnow().isoformat(),
            "webhook": {"id": webhook.id, "name": webhook.name},
            "message": "Argus test delivery: if the signature verifies, this webhook is set up",
        }
        started = time.perf_counter()
        outcome = await sender.send_once(target, payload, key, "test")
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        return WebhookTestResult(
            ok=outcome.ok, status_code=outcome.status_code, error=outcome.error, elapsed_ms=elapsed_ms
        )

    async def list_rules(self) -> Sequence[AlertRule]:
        return await self.rules.list()

    async def get_rule(self, rule_id: int) -> AlertRule:
        rule = await self.rules.get(rule_id)
        if rule is None:
            raise NotFound("alert rule", rule_id)
        return rule

    async def create_rule(self, body: AlertRuleCreate) -> AlertRule:
        data = body.model_dump()
        if data["dedup_window_s"] is None:
            data["dedup_window_s"] = self.default_dedup_s
        if await self.rules.get_by_name(body.name):
            raise Conflict(f"an alert rule named {body.name!r} exists", field="name")
        await self._check_refs(data["webhook_ids"], data["camera_ids"])
        return await self.rules.add(AlertRule(**data))

    async def update_rule(self, rule_id: int, body: AlertRuleUpdate) -> AlertRule:
        rule = await self.get_rule(rule_id)
        changes = _changes(body)
        if (
            "name" in changes
            and changes["name"] != rule.name
            and await self.rules.get_by_name(changes["name"])
        ):
            raise Conflict(f"an alert rule named {changes['name']!r} exists", field="name")
        await self._check_refs(changes.get("webhook_ids", []), changes.get("camera_ids", []))
        for key, value in changes.items():
            setattr(rule, key, value)
        await self.rules.session.flush()
        return rule

    async def delete_rule(self, rule_id: int) -> None:
        await self.rules.delete(await self.get_rule(rule_id))

    async def _check_refs(self, webhook_ids: list[int], camera_ids: list[int]) -> None:
        missing = sorted(set(webhook_ids) - await self.webhooks.existing_ids(webhook_ids))
        if missing:
            raise Invalid(f"unknown webhook ids: {missing}", field="webhook_ids")
        cameras = CameraRepository(self.rules.session)
        missing = sorted(set(camera_ids) - await cameras.existing_ids(camera_ids))
        if missing:
            raise Invalid(f"unknown camera ids: {missing}", field="camera_ids")

    async def page_alerts(
        self,
        *,
        status: str | None,
        webhook_id: int | None,
        camera_id: int | None,
        since: datetime | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[Sequence[Alert], str | None]:
        stmt = self.outbox.filtered(status, webhook_id, camera_id, since)
        try:
            return await self.outbox.page(stmt, Alert.created_at, Alert.id, cursor, limit)
        except InvalidCursor as exc:
            raise Invalid(str(exc), field="cursor") from exc

    async def get_alert(self, alert_id: str) -> Alert:
        alert = await self.outbox.get(alert_id)
        if alert is None:
            raise NotFound("alert", alert_id)
        return alert

    async def retry_alert(self, alert_id: str) -> Alert:
        alert = await self.get_alert(alert_id)
        if alert.status != AlertStatus.dead:
            raise Conflict(
                f"alert {alert_id} is {alert.status}; only a dead alert can be retried", field="status"
            )
        now = utcnow()
        return await self.outbox.retry_dead(alert, now, now + self.dead_after)


def _changes(body: Any) -> dict[str, Any]:
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    for key, value in changes.items():
        if value is None:
            raise Invalid(f"{key} cannot be null", field=key)
    return changes
