"""HTTP routes of the notifications service. They translate HTTP into use-case calls, nothing more."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from kit.pagination import Cursor, Limit, Page
from kit.security import CurrentUser, Principal, require_role
from kit.uow import run_in_unit_of_work
from apps.notifications import handlers
from apps.notifications.deps import Deps
from apps.notifications.schemas import NotificationPublic, NotificationQueued, NotificationSend
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
