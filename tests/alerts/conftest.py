"""Alerts fixtures: a migrated database, a real webhook receiver, a webhook + rule, a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.alerts.dispatcher import DispatchPolicy
from app.events.types import NewEvent, Phase
from app.kit.db import create_engine, create_sessionmaker
from app.kit.severity import Severity
from app.migrate import upgrade_async
from app.models import Alert, AlertRule, Webhook
from tests.support.webhook_receiver import WebhookReceiver

Sessionmaker = async_sessionmaker[AsyncSession]

# Retries, backoff and breaker in milliseconds so outage tests finish in a second or two.
FAST = DispatchPolicy(
    retry_initial_s=0.01,
    retry_max_s=0.05,
    backoff_initial_s=0.05,
    max_backoff_s=0.3,
    breaker_threshold=5,
    breaker_reset_s=0.1,
    idle_poll_s=0.5,
)


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def migrated(url: str) -> Sessionmaker:
    await upgrade_async(url)
    return create_sessionmaker(create_engine(url))


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Sessionmaker]:
    sm = await migrated(f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}")
    yield sm
    await sm.kw["bind"].dispose()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


async def add_webhook(sm: Sessionmaker, receiver: WebhookReceiver, name: str = "hook", **kw: Any) -> int:
    async with sm.begin() as s:
        hook = Webhook(
            name=name, url=receiver.url, secret=receiver.secret, timeout_s=kw.pop("timeout_s", 2.0), **kw
        )
        s.add(hook)
        await s.flush()
        return hook.id


async def add_rule(sm: Sessionmaker, webhook_ids: list[int], name: str = "rule", **kw: Any) -> int:
    values: dict[str, Any] = {
        "min_severity": "low",
        "dedup_window_s": 15.0,
        "camera_ids": [],
        "event_types": [],
    }
    values.update(kw)
    async with sm.begin() as s:
        rule = AlertRule(name=name, webhook_ids=webhook_ids, **values)
        s.add(rule)
        await s.flush()
        return rule.id


async def alerts(sm: Sessionmaker) -> list[Alert]:
    async with sm() as s:
        return list((await s.execute(select(Alert).order_by(Alert.created_at, Alert.id))).scalars())


def event(camera_id: int | None = 1, type_: str = "anomaly", severity: str = "high", **kw: Any) -> NewEvent:
    return NewEvent(
        camera_id=camera_id,
        type=type_,
        severity=Severity(severity),
        started_at=datetime.now(UTC),
        phase=kw.pop("phase", Phase.open),
        **kw,
    )
