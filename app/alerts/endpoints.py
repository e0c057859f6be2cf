"""/api/webhooks, /api/alert-rules and /api/alerts (delivery status, retry of a dead delivery)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, status

from app.alerts.schemas import (
    AlertRead,
    AlertRuleCreate,
    AlertRuleRead,
    AlertRuleUpdate,
    StatusName,
    WebhookCreate,
    WebhookRead,
    WebhookTestResult,
    WebhookUpdate,
)
from app.alerts.service import AlertService
from app.deps import ApiKeyDep, RuntimeDep, SessionDep
from app.errors import ArgusError
from app.kit.db import after_commit
from app.kit.openapi import NAME_TAKEN
from app.kit.schemas import CursorPage, DbId, IsoDateTime

webhooks = APIRouter(prefix="/api/webhooks", tags=["webhooks"])
rules = APIRouter(prefix="/api/alert-rules", tags=["alert rules"])
alerts = APIRouter(prefix="/api/alerts", tags=["alerts"])
routers = (webhooks, rules, alerts)

# Alert ids are uuid hex; the pattern keeps NUL and other junk away from the database (PostgreSQL 500s).
AlertId = Annotated[str, Path(max_length=64, pattern=r"^[\w-]+$")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "not found"}}


def get_service(session: SessionDep, rt: RuntimeDep) -> AlertService:
    s = rt.settings
    return AlertService(
        session,
        default_dedup_s=s.dedup_window_s,
        dead_after_s=s.webhook_dead_after_s,
        deny_networks=s.webhook_denied_networks,
    )


ServiceDep = Annotated[AlertService, Depends(get_service)]


def _committed(session: SessionDep, rt: RuntimeDep) -> None:
    """Tell the engine and dispatcher once the request's unit of work committed (app.kit.db.complete),
    or they may read the old state."""

    async def invalidate() -> None:
        engine = rt.alerts
        if engine is not None:
            engine.invalidate()
        dispatcher = rt.alert_dispatcher
        if dispatcher is not None:
            dispatcher.invalidate()

    after_commit(session, invalidate)


@webhooks.get("", summary="List webhooks (secrets are never returned)")
async def list_webhooks(service: ServiceDep, _: ApiKeyDep) -> list[WebhookRead]:
    return [WebhookRead.model_validate(w) for w in await service.list_webhooks()]


@webhooks.post("", status_code=status.HTTP_201_CREATED, summary="Add a webhook", responses=NAME_TAKEN)
async def create_webhook(
    body: WebhookCreate, service: ServiceDep, session: SessionDep, rt: RuntimeDep, _: ApiKeyDep
) -> WebhookRead:
    webhook = await service.create_webhook(body)
    _committed(session, rt)
    return WebhookRead.model_validate(webhook)


@webhooks.get("/{webhook_id}", summary="One webhook", responses=NOT_FOUND)
async def get_webhook(webhook_id: DbId, service: ServiceDep, _: ApiKeyDep) -> WebhookRead:
    return WebhookRead.model_validate(await service.get_webhook(webhook_id))


@webhooks.patch(
    "/{webhook_id}",
    summary="Change a webhook (a new secret replaces the old)",
    responses={**NOT_FOUND, **NAME_TAKEN},
)
async def update_webhook(
    webhook_id: DbId,
    body: WebhookUpdate,
    service: ServiceDep,
    session: SessionDep,
    rt: RuntimeDep,
    _: ApiKeyDep,
) -> WebhookRead:
    webhook = await service.update_webhook(webhook_id, body)
    _committed(session, rt)
    return WebhookRead.model_validate(webhook)


@webhooks.delete(
    "/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a webhook and its deliveries (409 while a rule uses it)",
    responses={**NOT_FOUND, 409: {"description": "used by an alert rule"}},
)
async def delete_webhook(
    webhook_id: DbId, service: ServiceDep, session: SessionDep, rt: RuntimeDep, _: ApiKeyDep
) -> None:
    await service.delete_webhook(webhook_id)
    _committed(session, rt)


@webhooks.post(
    "/{webhook_id}/test",
    summary="Send a signed test payload now and return the receiver's answer",
    description='One attempt, no retry. The body is `{"type": "test", ...}` with the usual headers.',
    responses={**NOT_FOUND, 503: {"description": "the webhook dispatcher is not running"}},
)
async def test_webhook(
    webhook_id: DbId, service: ServiceDep, rt: RuntimeDep, _: ApiKeyDep
) -> WebhookTestResult:
    dispatcher = rt.alert_dispatcher
    if dispatcher is None or dispatcher.sender is None:
        raise ArgusError("the webhook dispatcher is not running", 503)
    return await service.test_webhook(webhook_id, dispatcher.sender)


@rules.get("", summary="List alert rules")
async def list_rules(service: ServiceDep, _: ApiKeyDep) -> list[AlertRuleRead]:
    return [AlertRuleRead.model_validate(r) for r in await service.list_rules()]


@rules.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Add an alert rule",
    responses={**NAME_TAKEN, 422: {"description": "unknown webhook or camera id (`field` names it)"}},
)
async def create_rule(
    body: AlertRuleCreate, service: ServiceDep, session: SessionDep, rt: RuntimeDep, _: ApiKeyDep
) -> AlertRuleRead:
    rule = await service.create_rule(body)
    _committed(session, rt)
    return AlertRuleRead.model_validate(rule)


@rules.get("/{rule_id}", summary="One alert rule", responses=NOT_FOUND)
async def get_rule(rule_id: DbId, service: ServiceDep, _: ApiKeyDep) -> AlertRuleRead:
    return AlertRuleRead.model_validate(await service.get_rule(rule_id))


@rules.patch("/{rule_id}", summary="Change an alert rule", responses={**NOT_FOUND, **NAME_TAKEN})
async def update_rule(
    rule_id: DbId,
    body: AlertRuleUpdate,
    service: ServiceDep,
    session: SessionDep,
    rt: RuntimeDep,
    _: ApiKeyDep,
) -> AlertRuleRead:
    rule = await service.update_rule(rule_id, body)
    _committed(session, rt)
    return AlertRuleRead.model_validate(rule)


@rules.delete(
    "/{rule_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete an alert rule", responses=NOT_FOUND
)
async def delete_rule(
    rule_id: DbId, service: ServiceDep, session: SessionDep, rt: RuntimeDep, _: ApiKeyDep
) -> None:
    await service.delete_rule(rule_id)
    _committed(session, rt)


@alerts.get("", summary="Alert deliveries, newest first (cursor-paginated)")
async def list_alerts(
    service: ServiceDep,
    _: ApiKeyDep,
    status: Annotated[StatusName | None, Query(description="pending, retrying, delivered or dead")] = None,
    webhook_id: DbId | None = None,
    camera_id: DbId | None = None,
    since: Annotated[IsoDateTime | None, Query(description="created at or after (ISO 8601)")] = None,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> CursorPage[AlertRead]:
    rows, next_cursor = await service.page_alerts(
        status=status, webhook_id=webhook_id, camera_id=camera_id, since=since, cursor=cursor, limit=limit
    )
    return CursorPage[AlertRead](items=[AlertRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@alerts.get("/{alert_id}", summary="One alert delivery", responses=NOT_FOUND)
async def get_alert(alert_id: AlertId, service: ServiceDep, _: ApiKeyDep) -> AlertRead:
    return AlertRead.model_validate(await service.get_alert(alert_id))


@alerts.post(
    "/{alert_id}/retry",
    summary="Send a dead delivery again",
    description="Resets a `dead` delivery to `pending` with a fresh expiry; 409 for any other status.",
    responses={**NOT_FOUND, 409: {"description": "the alert is not dead"}},
)
async def retry_alert(
    alert_id: AlertId, service: ServiceDep, session: SessionDep, rt: RuntimeDep, _: ApiKeyDep
) -> AlertRead:
    alert = await service.retry_alert(alert_id)

    async def wake() -> None:
        dispatcher = rt.alert_dispatcher
        if dispatcher is not None:
            dispatcher.wake()

    after_commit(session, wake)
    return AlertRead.model_validate(alert)
