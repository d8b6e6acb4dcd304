"""HTTP routes of the booking service. They translate HTTP into use-case calls, nothing more.

``/booking/...`` is the public API (through the gateway). ``/internal/...`` is for other services
only: the gateway does not route it.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from apps.booking import handlers
from apps.booking.deps import Deps
from kit.qr import qr_svg
from apps.booking.domain import Booking, BookingError, BookingStatus
from apps.booking.schemas import (
    ATTENDEE_CSV_HEADER,
    BookingCreate,
    BookingView,
    CapacityChange,
    CheckInCounts,
    CheckInList,
    CheckInRequest,
    CheckInResult,
    PublicJwk,
    ScanOutcome,
    ScanUpload,
    ScanUploadResult,
    TicketChange,
    TicketPublic,
    InventoryPublic,
    RefundCreate,
    attendee_rows,
)
from kit.csv_export import CSV, csv_response, wants_csv, write_csv
from kit.uow import UnitOfWork, run_in_unit_of_work
from kit.idempotency import IdempotencyKey, idempotent
from kit.metrics import count
from kit.pagination import Cursor, Limit, Page
from kit.problems import NotFound
from kit.security import CurrentUser, Principal, require_role
from observability import set_span_attributes

router = APIRouter(prefix="/booking", tags=["booking"])
internal_router = APIRouter(prefix="/internal", tags=["internal"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid access token"},
    404: {"description": "No such booking or event"},
    409: {
        "description": "Not enough seats (event or ticket type), sales not started or ended, "
        "event cancelled, hold limit reached, not cancellable, or the event's price changing "
        "while booking (retry)"
    },
    422: {
        "description": "Invalid fields, `quantity` for an event with several ticket types, an "
        "unknown ticket type or voucher, more seats than one booking (or one line, the type's "
        "`max_per_order`) may take, attendees not one per ticket, or an Idempotency-Key reused "
        "with another body"
    },
}


def _outcome(exc: BookingError) -> str:
    """The `outcome` label of the bookings counter for a refusal (sold_out, hold_limit...)."""
    return (
        re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__)
        .lower()
        .replace("not_enough_seats", "sold_out")
    )


def count_refusal(exc: BookingError) -> None:
    """Count a refused booking attempt (``bookings`` by outcome). The route and the
    early-refusal lane (``early_refusal.py``) both count through this; the error itself is the
    answer (rendered by the kit's handler, or by ``render_problem`` in the lane)."""
    count("bookings", _outcome(exc))


@router.post(
    "/create",
    status_code=201,
    response_model=BookingView,
    responses=ERRORS,
    summary="Hold seats of an event for the caller (pay before `expires_at`)",
)
async def create_booking(
    deps: Deps,
    body: BookingCreate,
    user: CurrentUser,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    settings = deps.settings
    set_span_attributes(**{"event.id": body.event_id, "user.id": user.user_id})
    if idempotency_key is None:  # with a key, a refusal is stored: decide it on a fresh read
        try:
            handlers.refuse_from_memory(
                deps.availability,
                event_id=body.event_id,
                quantity=body.total,
                max_per_booking=settings.max_tickets_per_booking,
            )
        except BookingError as exc:
            count_refusal(exc)
            raise

    async def run(uow: UnitOfWork) -> tuple[int, Any]:
        try:
            booking = await handlers.reserve_seats(
                uow,
                repository=deps.repository,
                user=user,
                event_id=body.event_id,
                quantity=body.quantity,
                lines=None
                if body.lines is None
                else [(ln.ticket_type_id, ln.quantity) for ln in body.lines],
                attendees=None
                if body.attendees is None
                else [(a.name, a.email) for a in body.attendees],
                voucher_code=body.voucher_code,
                hold_seconds=settings.booking_hold_seconds,
                max_per_booking=settings.max_tickets_per_booking,
                max_held_per_user=settings.max_seats_held_per_user,
                # with a key, a refusal is stored for replays: decide it on a fresh read
                recently=deps.availability if idempotency_key is None else None,
            )
        except BookingError as exc:
            count_refusal(exc)
            raise
        set_span_attributes(**{"booking.id": booking.id})
        return 201, BookingView.with_refunds(booking).model_dump(mode="json")

    return await idempotent(
        deps.db,
        scope=f"{user.user_id}:booking.create",
        key=idempotency_key,
        body=body.model_dump(mode="json"),
        run=run,
        single_statement=True,
    )


@router.get(
    "",
    response_model=Page[BookingView],
    summary="List bookings, newest first",
    description="Your own bookings. Admins see everybody's, or filter with `user_id`.",
)
async def list_bookings(
    deps: Deps,
    user: CurrentUser,
    limit: Limit = 20,
    cursor: Cursor = None,
    user_id: Annotated[uuid.UUID | None, Query(description="Admins only.")] = None,
    event_id: Annotated[uuid.UUID | None, Query()] = None,
    status: Annotated[BookingStatus | None, Query()] = None,
) -> Page[BookingView]:
    items, next_cursor = await handlers.list_bookings(
        deps.db,
        repository=deps.repository,
        actor=user,
        limit=limit,
        cursor=cursor,
        user_id=user_id,
        event_id=event_id,
        status=status,
    )
    return await _page_of_views(deps, items, next_cursor)


@router.get("/{booking_id}", response_model=BookingView, responses={404: ERRORS[404]})
async def get_booking(deps: Deps, booking_id: uuid.UUID, user: CurrentUser) -> BookingView:
    return await _view(
        deps, await handlers.get_booking(deps.db, booking_id, user, repository=deps.repository)
    )


@router.post(
    "/{booking_id}/cancel",
    response_model=BookingView,
    responses=ERRORS,
    summary="Cancel a booking (owner or admin); a paid one is refunded by the refund policy",
    description="A pending booking is released. A confirmed one is refunded in full minus the "
    "event's `fee_percent` while its refund policy allows self-service and its deadline "
    "(`deadline_hours_before_start` before the start) has not passed; else 409 "
    "`cancellation-closed`. The booking's `refund` shows the amount, fee and status.",
)
async def cancel_booking(deps: Deps, booking_id: uuid.UUID, user: CurrentUser) -> BookingView:
    return await _release(deps, handlers.cancel_booking, booking_id, user)


@internal_router.put(
    "/events/{event_id}/capacity",
    response_model=InventoryPublic,
    responses={
        404: {"description": "Event not known to booking (yet)"},
        409: {"description": "Below the seats already held or sold"},
    },
    summary="Apply a capacity change now, unless it is below the seats held + sold",
    description="Called by the events service before it commits a capacity decrease of the event "
    "or (with `ticket_type_id`) of one ticket type, with the caller's token (the event's "
    "organizer or an admin). Not routed by the gateway.",
)
async def apply_capacity(
    deps: Deps,
    event_id: uuid.UUID,
    body: CapacityChange,
    user: Annotated[Principal, require_role("organizer", "admin")],
) -> InventoryPublic:
    inv = await run_in_unit_of_work(
        deps.db,
        handlers.apply_capacity,
        repository=deps.repository,
        event_id=event_id,
        capacity=body.capacity,
        actor=user,
        ticket_type_id=body.ticket_type_id,
    )
    if inv is None:
        raise NotFound("This event is not known to booking yet.", code="event-not-found")
    deps.availability.forget(event_id)
    return InventoryPublic.of(inv)


# --- refunds and the organizer's view ---------------------------------------------------------


async def _view(deps: Deps, booking: Booking) -> BookingView:
    refunds = (await handlers.refunds_of(deps.db, [booking.id])).get(booking.id, [])
    return BookingView.with_refunds(booking, refunds)


async def _release(
    deps: Deps,
    use_case: Callable[..., Awaitable[Booking]],
    booking_id: uuid.UUID,
    actor: Principal,
    **kw: object,
) -> BookingView:
    """Run a use case that may give a booking's seats back (a cancellation, a refund) as
    ``actor``, and answer the booking as it left it."""
    set_span_attributes(**{"booking.id": booking_id, "user.id": actor.user_id})
    booking = await run_in_unit_of_work(
        deps.db, use_case, repository=deps.repository, booking_id=booking_id, actor=actor, **kw
    )
    deps.availability.forget(booking.event_id)  # its seats may be back on sale
    return await _view(deps, booking)


async def _page_of_views(
    deps: Deps, items: list[Booking], next_cursor: str | None
) -> Page[BookingView]:
    refunds = await handlers.refunds_of(deps.db, [b.id for b in items])
    return Page[BookingView](
        items=[BookingView.with_refunds(b, refunds.get(b.id, [])) for b in items],
        next_cursor=next_cursor,
    )


@router.post(
    "/{booking_id}/refund",
    response_model=BookingView,
    responses={
        **ERRORS,
        404: {"description": "No such booking, or not of one of your events"},
        409: {"description": "The booking was never paid (`booking-not-paid`)"},
        422: {"description": "More than paid and not yet refunded (`refund-exceeds-remaining`)"},
    },
    summary="Refund a booking, in part or in full (the event's organizer, admin)",
    description="Any amount up to what was paid and not yet refunded, at any time; without "
    "`amount`, all of it. The refund that completes the total cancels a confirmed booking "
    "(reason `organizer_refund`, its seats back on sale). Refunds never exceed what was paid, "
    "however many are asked at once. A refund that failed is not counted as refunded: ask for "
    "it again here, also once the booking is cancelled. The booking's `refund` shows this "
    "refund's status, `refunds` every refund.",
)
async def refund_booking(
    deps: Deps,
    booking_id: uuid.UUID,
    body: RefundCreate,
    user: CurrentUser,  # anyone but the event's organizer or an admin: 404, like a stranger
) -> BookingView:
    return await _release(
        deps, handlers.refund_booking, booking_id, user, amount=body.amount, note=body.reason
    )


@router.get(
    "/events/{event_id}/bookings",
    response_model=Page[BookingView],
    operation_id="bookings_list_for_event",
    responses={
        200: {"content": {CSV: {"schema": {"type": "string"}}}},
        401: ERRORS[401],
        404: {"description": "No such event, or not one of yours"},
    },
    summary="The event's bookings with lines, attendees and status (the event's organizer, admin)",
    description="Newest first, paginated. With `Accept: text/csv`, the attendee list: one row "
    "per ticket of the page (cells a spreadsheet would run as formulas are escaped).",
)
async def event_bookings(
    request: Request,
    deps: Deps,
    event_id: uuid.UUID,
    user: CurrentUser,  # anyone but the event's organizer or an admin: 404
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Page[BookingView] | Response:
    items, next_cursor = await handlers.event_bookings(
        deps.db,
        repository=deps.repository,
        actor=user,
        event_id=event_id,
        limit=limit,
        cursor=cursor,
    )
    if wants_csv(request.headers.get("accept", "")):
        next_page = f"/booking/events/{event_id}/bookings?cursor={next_cursor}&limit={limit}"
        return csv_response(
            write_csv(ATTENDEE_CSV_HEADER, attendee_rows(items)),
            f"attendees-{event_id}.csv",
            headers={"Link": f'<{next_page}>; rel="next"'} if next_cursor is not None else None,
        )
    return await _page_of_views(deps, items, next_cursor)


# --- tickets and check-in ---------------------------------------------------------------------

_NOT_YOURS = {404: {"description": "No such booking, ticket or event, or not yours to see"}}
_NOT_ORGANIZED = {404: {"description": "No such event, or not one of yours"}}


@router.get(
    "/{booking_id}/tickets",
    response_model=Page[TicketPublic],
    responses={401: ERRORS[401], **_NOT_YOURS},
    summary="The booking's tickets, one per seat (owner, the event's organizer, admin)",
    description="Issued when the booking is confirmed (none before); `void` once it is "
    "cancelled or fully refunded. One page holds them all (`next_cursor` is null).",
)
async def booking_tickets(deps: Deps, booking_id: uuid.UUID, user: CurrentUser) -> Any:
    items = await handlers.booking_tickets(
        deps.db, repository=deps.repository, booking_id=booking_id, actor=user
    )
    return Page[TicketPublic](items=[TicketPublic.of(t) for t in items], next_cursor=None)


@router.get(
    "/tickets/{ticket_id}/qr.svg",
    response_class=Response,
    responses={
        200: {"content": {"image/svg+xml": {"schema": {"type": "string"}}}},
        401: ERRORS[401],
        **_NOT_YOURS,
    },
    summary="The ticket's QR code as SVG (owner, the event's organizer, admin)",
)
async def ticket_qr(deps: Deps, ticket_id: uuid.UUID, user: CurrentUser) -> Response:
    ticket = await handlers.get_ticket(
        deps.db, repository=deps.repository, ticket_id=ticket_id, actor=user
    )
    return Response(
        # segno is pure Python (about 15 ms for a ticket's code): drawn off the event loop, so
        # the holds and check-ins this process serves meanwhile do not wait behind it
        await asyncio.to_thread(qr_svg, ticket.secret),
        media_type="image/svg+xml",
        headers={"Cache-Control": "private, no-store"},
    )


@router.get(
    "/events/{event_id}/checkin-key",
    response_model=PublicJwk,
    responses={401: ERRORS[401], **_NOT_ORGANIZED},
    summary="The public key (JWK) that verifies the event's ticket secrets (organizer, admin)",
    description="For scanners that verify tickets offline: an Ed25519 key (`kty` OKP, `crv` "
    "Ed25519) whose `kid` is the one in every secret's JWS header.",
)
async def checkin_key(deps: Deps, event_id: uuid.UUID, user: CurrentUser) -> Any:
    return await run_in_unit_of_work(deps.db, handlers.checkin_key, event_id=event_id, actor=user)


@router.post(
    "/checkin",
    response_model=CheckInResult,
    responses={
        401: ERRORS[401],
        404: {"description": "`unknown-ticket` (the secret does not verify), or not your event"},
        409: {
            "description": "`already-redeemed` (with `redeemed_at` of the first scan), "
            "`ticket-void` (booking cancelled or refunded), `wrong-event`"
        },
    },
    summary="Redeem a scanned ticket at the event's entrance (organizer, admin)",
    description="The first scan of a valid ticket redeems it; any other scan is refused. Of "
    "any number of simultaneous scans of one ticket exactly one is `redeemed`.",
)
async def check_in(deps: Deps, body: CheckInRequest, user: CurrentUser) -> CheckInResult:
    set_span_attributes(**{"event.id": body.event_id, "user.id": user.user_id})
    ticket = await run_in_unit_of_work(
        deps.db, handlers.check_in, event_id=body.event_id, secret=body.secret, actor=user
    )
    return CheckInResult(result="redeemed", ticket=TicketPublic.of(ticket))


@router.get(
    "/events/{event_id}/checkins",
    response_model=CheckInCounts,
    responses={401: ERRORS[401], **_NOT_ORGANIZED},
    summary="How many of the event's tickets were scanned in (organizer, admin)",
)
async def checkin_counts(deps: Deps, event_id: uuid.UUID, user: CurrentUser) -> CheckInCounts:
    total, redeemed = await handlers.checkin_counts(deps.db, event_id=event_id, actor=user)
    return CheckInCounts(event_id=event_id, tickets=total, redeemed=redeemed)


@router.get(
    "/events/{event_id}/checkin-list",
    response_model=CheckInList,
    responses={401: ERRORS[401], **_NOT_ORGANIZED},
    summary="The event's tickets changed since a cursor, for offline scanners (organizer, admin)",
    description="Without `since`: every ticket. Keep the returned `cursor` and pass it as "
    "`since` to get only what changed after (issued, redeemed, voided). Changes show up about "
    "two seconds after they happen.",
)
async def checkin_list(
    deps: Deps,
    event_id: uuid.UUID,
    user: CurrentUser,
    since: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> CheckInList:
    items, cursor, more = await handlers.checkin_changes(
        deps.db, event_id=event_id, actor=user, cursor=since, limit=limit
    )
    return CheckInList(
        items=[TicketChange.model_validate(t, from_attributes=True) for t in items],
        cursor=cursor,
        has_more=more,
    )


@router.post(
    "/events/{event_id}/checkin/upload",
    response_model=ScanUploadResult,
    responses={401: ERRORS[401], **_NOT_ORGANIZED},
    summary="Upload an offline scanner's scans (organizer, admin)",
    description="Each scan is redeemed as of its `scanned_at` (never later than now, never "
    "earlier than the ticket's issue) or refused, with one result per scan. A ticket is "
    "redeemed once however many scans of it arrive; the earliest scan's time is the one kept "
    "(and the ticket is listed as changed in `checkin-list`).",
)
async def upload_scans(
    deps: Deps, event_id: uuid.UUID, body: ScanUpload, user: CurrentUser
) -> ScanUploadResult:
    outcomes = await handlers.upload_scans(
        deps.db,
        event_id=event_id,
        scans=[(s.secret, s.scanned_at) for s in body.scans],
        actor=user,
    )
    return ScanUploadResult(
        results=[
            ScanOutcome(
                result=result,  # type: ignore[arg-type]
                ticket_id=t.id if t is not None else None,
                redeemed_at=t.redeemed_at if t is not None else None,
            )
            for result, t in outcomes
        ]
    )
