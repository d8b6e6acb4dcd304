"""HTTP routes of the notifications service. They translate HTTP into use-case calls, nothing more."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Response

from kit.pagination import Cursor, Limit, Page
from kit.security import CurrentUser, Principal, require_role
from kit.uow import run_in_unit_of_work
from apps.notifications import handlers, webhooks
from apps.notifications.deps import Deps
from apps.notifications.schemas import (
    NotificationPublic,
    NotificationQueued,
    NotificationSend,
    WebhookCreate,
    WebhookCreated,
    WebhookDelivery,
    WebhookPublic,
)
from observability import set_span_attributes

router = APIRouter(prefix="/notifications", tags=["notifications"])

ERRORS = {
    401: {"description": "Missing or invalid access token"},
    403: {"description": "Not an admin"},
    422: {"description": "Invalid fields, or the user cannot be reached on that channel"},
}


@router.post(
    "/send",
    status_code=202,
    response_model=NotificationQueued,
    responses=ERRORS,
    summary="Queue a free-text notification to one user (admin only)",
)
async def send_notification(
    deps: Deps,
    body: NotificationSend,
    admin: Annotated[Principal, require_role("admin")],
) -> NotificationQueued:
    set_span_attributes(**{"user.id": body.user_id, "admin.id": admin.user_id})
    notification = await run_in_unit_of_work(
        deps.db,
        handlers.send_notification,
        user_id=body.user_id,
        channel=body.channel,
        subject=body.subject,
        body=body.body,
    )
    return NotificationQueued(id=notification.id, status=notification.status)


@router.get(
    "",
    response_model=Page[NotificationPublic],
    responses={401: ERRORS[401]},
    summary="The caller's own notifications, newest first",
)
async def list_notifications(
    deps: Deps, user: CurrentUser, limit: Limit = 20, cursor: Cursor = None
) -> Page[NotificationPublic]:
    items, next_cursor = await handlers.list_notifications(
        deps.db, user_id=user.user_id, limit=limit, cursor=cursor
    )
    return Page[NotificationPublic](
        items=[NotificationPublic.of(n) for n in items], next_cursor=next_cursor
    )


# --- webhooks ------------------------------------------------------------------------------------

Owner = Annotated[Principal, require_role("organizer", "admin")]
WEBHOOK_ERRORS = {
    401: ERRORS[401],
    403: {"description": "Not an organizer or admin"},
    404: {"description": "No such webhook (or delivery) of the caller's"},
}


@router.post(
    "/webhooks",
    status_code=201,
    response_model=WebhookCreated,
    responses={
        **WEBHOOK_ERRORS,
        409: {"description": "`webhook-limit-reached`: the caller has as many as one owner may"},
        422: {"description": "Invalid fields, an unknown kind, or a URL webhooks may not reach"},
        503: {"description": "The message broker is unreachable: nothing registered, try again"},
    },
    summary="Register a webhook endpoint (organizer, admin); its secret is shown only here",
)
async def create_webhook(deps: Deps, body: WebhookCreate, owner: Owner) -> WebhookCreated:
    created = await run_in_unit_of_work(
        deps.db,
        webhooks.register_webhook,
        owner=owner,
        url=body.url,
        kinds=body.events,
        event_id=body.event_id,
        targets=deps.webhook_targets,
        box=deps.secret_box,
        bindings=deps.bindings,
        max_per_owner=deps.settings.max_webhooks_per_owner,
    )
    return WebhookCreated(**WebhookPublic.of(created.row).model_dump(), secret=created.secret)


@router.get(
    "/webhooks",
    response_model=Page[WebhookPublic],
    responses={401: ERRORS[401], 403: WEBHOOK_ERRORS[403]},
    summary="The caller's webhook endpoints, newest first",
)
async def list_webhooks(
    deps: Deps, owner: Owner, limit: Limit = 20, cursor: Cursor = None
) -> Page[WebhookPublic]:
    rows, next_cursor = await webhooks.list_webhooks(
        deps.db, owner=owner, limit=limit, cursor=cursor
    )
    return Page[WebhookPublic](items=[WebhookPublic.of(r) for r in rows], next_cursor=next_cursor)


@router.delete(
    "/webhooks/{webhook_id}",
    status_code=204,
    response_class=Response,
    responses=WEBHOOK_ERRORS,
    summary="Delete a webhook endpoint and its pending deliveries",
)
async def delete_webhook(deps: Deps, webhook_id: uuid.UUID, owner: Owner) -> Response:
    await run_in_unit_of_work(deps.db, webhooks.delete_webhook, owner=owner, endpoint_id=webhook_id)
    return Response(status_code=204)


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    response_model=Page[WebhookDelivery],
    responses=WEBHOOK_ERRORS,
    summary="An endpoint's deliveries, newest first, with every attempt",
)
async def list_webhook_deliveries(
    deps: Deps, webhook_id: uuid.UUID, owner: Owner, limit: Limit = 20, cursor: Cursor = None
) -> Page[WebhookDelivery]:
    items, next_cursor = await webhooks.list_deliveries(
        deps.db, owner=owner, endpoint_id=webhook_id, limit=limit, cursor=cursor
    )
    return Page[WebhookDelivery](
        items=[WebhookDelivery.of(row, attempts) for row, attempts in items],
        next_cursor=next_cursor,
    )


@router.post(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
    status_code=202,
    response_model=WebhookDelivery,
    responses={
        **WEBHOOK_ERRORS,
        409: {"description": "`delivery-in-flight`: it is being sent right now, nothing changed"},
    },
    summary="Send a delivery again now (a failed one gets one more attempt)",
)
async def retry_webhook_delivery(
    deps: Deps, webhook_id: uuid.UUID, delivery_id: uuid.UUID, owner: Owner
) -> WebhookDelivery:
    row, attempts = await run_in_unit_of_work(
        deps.db,
        webhooks.retry_delivery,
        owner=owner,
        endpoint_id=webhook_id,
        delivery=delivery_id,
    )
    return WebhookDelivery.of(row, attempts)
