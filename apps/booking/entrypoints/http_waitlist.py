"""HTTP routes of the waiting list (``/booking/waitlist``): they translate HTTP into the use
cases of apps/booking/waitlist.py, nothing more. Registered before the booking routes, whose
``/booking/{booking_id}`` would otherwise take ``waitlist`` for a booking id."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response

from apps.booking import handlers, waitlist
from apps.booking.deps import Deps
from apps.booking.schemas import WaitlistEntryPublic, WaitlistJoin
from kit.pagination import Cursor, Limit, Page
from kit.security import CurrentUser
from kit.uow import run_in_unit_of_work
from observability import set_span_attributes

router = APIRouter(prefix="/booking/waitlist", tags=["waiting list"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid access token"},
    404: {"description": "No such event (`event-not-found`) or entry"},
    409: {
        "description": "The seats can be booked now (`seats-available`), the event is "
        "cancelled, the type's sales have ended or not started, or more seats than one user may "
        "hold at once (`hold-limit-reached`)"
    },
    422: {
        "description": "Invalid fields, an unknown ticket type, or more seats than one "
        "booking may take"
    },
}


@router.post(
    "",
    status_code=201,
    response_model=WaitlistEntryPublic,
    responses=ERRORS,
    summary="Join a sold-out event's waiting list for 1..N seats (of a type, or any)",
    description="Only while the seats asked for cannot be booked (else 409 `seats-available`). "
    "When seats come back the entries are served in order: the entry at the head gets a pending "
    "booking held for it (status `offered`, with `booking_id` and `expires_at`) and an e-mail; "
    "pay it like any booking before `expires_at`.",
)
async def join_waitlist(deps: Deps, body: WaitlistJoin, user: CurrentUser) -> WaitlistEntryPublic:
    set_span_attributes(**{"event.id": body.event_id, "user.id": user.user_id})
    entry = await run_in_unit_of_work(
        deps.db,
        waitlist.join_waitlist,
        user=user,
        event_id=body.event_id,
        ticket_type_id=body.ticket_type_id,
        quantity=body.quantity,
        hold_seconds=deps.settings.booking_hold_seconds,
        max_per_booking=deps.settings.max_tickets_per_booking,
        max_held_per_user=deps.settings.max_seats_held_per_user,
    )
    return WaitlistEntryPublic.of(entry)


@router.get(
    "",
    response_model=Page[WaitlistEntryPublic],
    responses={401: ERRORS[401]},
    summary="Your waiting-list entries, oldest first",
)
async def list_waitlist(
    deps: Deps, user: CurrentUser, limit: Limit = 20, cursor: Cursor = None
) -> Page[WaitlistEntryPublic]:
    entries, next_cursor = await waitlist.list_waitlist(
        deps.db, user=user, limit=limit, cursor=cursor
    )
    return Page[WaitlistEntryPublic](
        items=[WaitlistEntryPublic.of(e) for e in entries], next_cursor=next_cursor
    )


@router.delete(
    "/{entry_id}",
    status_code=204,
    responses={401: ERRORS[401], 404: {"description": "No such entry of yours"}},
    summary="Leave a waiting list (an open offer is declined: its seats pass on)",
)
async def leave_waitlist(deps: Deps, entry_id: uuid.UUID, user: CurrentUser) -> Response:
    await run_in_unit_of_work(
        deps.db,
        handlers.leave_waitlist,
        repository=deps.repository,
        user=user,
        entry_id=entry_id,
    )
    deps.availability.forget()
    return Response(status_code=204)
