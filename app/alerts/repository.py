"""Repositories for webhooks and alert rules (the outbox has its own, in outbox.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select

from app.kit.repository import RepositoryBase
from app.models import AlertRule, Webhook


class WebhookRepository(RepositoryBase[Webhook]):
    model = Webhook

    async def get_by_name(self, name: str) -> Webhook | None:
        return await self.get_one_or_none(select(Webhook).where(Webhook.name == name))

    async def enabled_ids(self) -> set[int]:
        return set((await self.session.execute(select(Webhook.id).where(Webhook.enabled))).scalars())

    async def existing_ids(self, ids: Iterable[int]) -> set[int]:
        wanted = list(set(ids))
        rows = await self.session.execute(select(Webhook.id).where(Webhook.id.in_(wanted)))
        return set(rows.scalars())


class AlertRuleRepository(RepositoryBase[AlertRule]):
    model = AlertRule

    async def get_by_name(self, name: str) -> AlertRule | None:
        return await self.get_one_or_none(select(AlertRule).where(AlertRule.name == name))

    async def list_enabled(self) -> Sequence[AlertRule]:
        return await self.list(select(AlertRule).where(AlertRule.enabled).order_by(AlertRule.id))

    async def using_webhook(self, webhook_id: int) -> Sequence[AlertRule]:
        # JSON list membership differs per dialect; rules are few, so filter here.
        return [r for r in await self.list() if webhook_id in (r.webhook_ids or [])]
