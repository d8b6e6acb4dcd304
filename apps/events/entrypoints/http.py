"""HTTP routes of the events service. They translate HTTP into use-case calls, nothing more."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Body, Query, Request

from apps.events import handlers
from apps.events.deps import Deps
from apps.events.schemas import (
    EventCancel,
    EventCreate,
    EventPublic,
    EventUpdate,
    TicketTypeCreate,
    TicketTypePublic,
    TicketTypeUpdate,
    VoucherCreate,
    VoucherList,
    VoucherPublic,
    VoucherUpdate,
)
from kit.uow import run_in_unit_of_work
from kit.pagination import Cursor, Limit, Page
from kit.security import CurrentUser, Principal, require_role
from observability import set_span_attributes

router = APIRouter(prefix="/events", tags=["events"])
T = TypeVar("T")

ERRORS = {
    401: {"description": "Missing or invalid access token"},
    403: {"description": "Not allowed"},
    404: {"description": "No such event"},
    409: {"description": "The event is cancelled, or a capacity below the seats already booked"},
    503: {"description": "Booking could not confirm a capacity decrease"},
    422: {"description": "Invalid fields"},
}


def _capacity_guard(request: Request, deps: Deps) -> handlers.CapacityGuard | None:
    guard = deps.capacity_guard
    if guard is None:
        return None
    return functools.partial(guard.apply, authorization=request.headers.get("authorization"))


async def _in_uow(deps: Deps, use_case: Callable[..., Awaitable[T]], **kw: object) -> T:
    # A domain error propagates: the kit's handler answers it (each says its status and code).
    return await run_in_unit_of_work(deps.db, use_case, **kw)


async def _change_event(
    deps: Deps,
    use_case: Callable[..., Awaitable[T]],
    event_id: uuid.UUID,
    actor: Principal,
    **kw: object,
) -> T:
    """Run a use case that changes event ``event_id`` (or something of it) as ``actor``."""
    set_span_attributes(**{"event.id": event_id, "user.id": actor.user_id})
    return await _in_uow(deps, use_case, event_id=event_id, actor=actor, **kw)


@router.post(
    "/create",
    status_code=201,
    response_model=EventPublic,
    responses=ERRORS,
    summary="Create an event (organizer or admin)",
)
async def create_event(
    deps: Deps,
    body: EventCreate,
    organizer: Annotated[Principal, require_role("organizer", "admin")],
) -> EventPublic:
    event = await _in_uow(
        deps, handlers.create_event, organizer=organizer, fields=body.model_dump()
    )
    set_span_attributes(**{"event.id": event.id, "user.id": organizer.user_id})
    return EventPublic.of(event)


@router.put(
    "/{event_id}/update",
    response_model=EventPublic,
    responses=ERRORS,
    summary="Change an event (its organizer or an admin)",
)
async def update_event(
    request: Request, deps: Deps, event_id: uuid.UUID, body: EventUpdate, user: CurrentUser
) -> EventPublic:
    event = await _change_event(
        deps,
        handlers.update_event,
        event_id,
        user,
        changes=body.changes(),
        capacity_guard=_capacity_guard(request, deps),
    )
    return EventPublic.of(event)


TYPE_ERRORS = {
    **ERRORS,
    404: {"description": "No such event, or no such ticket type of it"},
    409: {
        "description": "The event is cancelled, has its 20 ticket types already, or a capacity "
        "below the type's seats already booked"
    },
    503: {"description": "Booking could not confirm a capacity decrease"},
}


@router.post(
    "/{event_id}/ticket-types",
    status_code=201,
    response_model=TicketTypePublic,
    responses=TYPE_ERRORS,
    summary="Add a ticket type to an event (its organizer or an admin); answers the new type",
    description="The event's `event_updated` snapshot then lists it (`changed_fields` has "
    "`ticket_types`).",
)
async def add_ticket_type(
    deps: Deps,
    event_id: uuid.UUID,
    body: TicketTypeCreate,
    user: Annotated[Principal, require_role("organizer", "admin")],
) -> TicketTypePublic:
    event, ticket_type = await _change_event(
        deps, handlers.add_ticket_type, event_id, user, fields=body.model_dump()
    )
    return TicketTypePublic.of(ticket_type, event.currency)


@router.put(
    "/{event_id}/ticket-types/{ticket_type_id}",
    response_model=TicketTypePublic,
    responses=TYPE_ERRORS,
    summary="Change a ticket type (its event's organizer or an admin); answers the type",
    description="A new price applies to seats held after the change; bookings already made keep "
    "the price they were held at. A capacity below the type's seats already held or sold is "
    "refused (409 `capacity-below-booked`), as for the event's capacity.",
)
async def update_ticket_type(
    request: Request,
    deps: Deps,
    event_id: uuid.UUID,
    ticket_type_id: uuid.UUID,
    body: TicketTypeUpdate,
    user: Annotated[Principal, require_role("organizer", "admin")],
) -> TicketTypePublic:
    event, ticket_type = await _change_event(
        deps,
        handlers.update_ticket_type,
        event_id,
        user,
        ticket_type_id=ticket_type_id,
        changes=body.changes(),
        capacity_guard=_capacity_guard(request, deps),
    )
    return TicketTypePublic.of(ticket_type, event.currency)


@router.delete(
    "/{event_id}",
    response_model=EventPublic,
    responses=ERRORS,
    summary="Cancel an event: its bookings are cancelled and paid ones refunded",
)
async def cancel_event(
    deps: Deps,
    event_id: uuid.UUID,
    user: CurrentUser,
    body: Annotated[EventCancel | None, Body()] = None,
) -> EventPublic:
    event = await _change_event(
        deps, handlers.cancel_event, event_id, user, reason=body.reason if body else ""
    )
    return EventPublic.of(event)


@router.get("", response_model=Page[EventPublic], summary="List events, soonest first")
async def list_events(
    deps: Deps,
    limit: Limit = 20,
    cursor: Cursor = None,
    organizer_id: Annotated[uuid.UUID | None, Query()] = None,
    status: Annotated[Literal["scheduled", "cancelled"] | None, Query()] = None,
) -> Page[EventPublic]:
    items, next_cursor = await handlers.list_events(
        deps.db, limit=limit, cursor=cursor, organizer_id=organizer_id, status=status
    )
    return Page[EventPublic](items=[EventPublic.of(e) for e in items], next_cursor=next_cursor)


@router.get("/{event_id}", response_model=EventPublic, responses={404: ERRORS[404]})
async def get_event(deps: Deps, event_id: uuid.UUID) -> EventPublic:
    return EventPublic.of(await handlers.get_event(deps.db, event_id))


VOUCHER_ERRORS = {
    **ERRORS,
    404: {"description": "No such event, or no such voucher of it"},
    409: {"description": "The event is cancelled, or already has a voucher with this code"},
    503: {"description": "The message broker is unreachable: nothing saved, try again"},
}


@router.post(
    "/{event_id}/vouchers",
    status_code=201,
    response_model=VoucherPublic,
    responses=VOUCHER_ERRORS,
    summary="Create a voucher for an event (its organizer or an admin)",
    description="Booking may take a moment to learn it (a `voucher_created` message): until "
    "then a booking with the code is answered 422.",
)
async def create_voucher(
    deps: Deps,
    event_id: uuid.UUID,
    body: VoucherCreate,
    user: Annotated[Principal, require_role("organizer", "admin")],
) -> VoucherPublic:
    voucher = await _change_event(
        deps,
        handlers.create_voucher,
        event_id,
        user,
        code=body.code,
        fields=body.model_dump(exclude={"code"}),
        bindings=deps.bindings,
    )
    return VoucherPublic.of(voucher)


@router.put(
    "/{event_id}/vouchers/{voucher_id}",
    response_model=VoucherPublic,
    responses=VOUCHER_ERRORS,
    summary="Change a voucher (its event's organizer or an admin)",
    description="New terms apply to bookings made after the change; bookings already made keep "
    "their discount. A `max_uses` below the uses taken stops new uses until enough come back.",
)
async def update_voucher(
    deps: Deps,
    event_id: uuid.UUID,
    voucher_id: uuid.UUID,
    body: VoucherUpdate,
    user: Annotated[Principal, require_role("organizer", "admin")],
) -> VoucherPublic:
    voucher = await _change_event(
        deps, handlers.update_voucher, event_id, user, voucher_id=voucher_id, changes=body.changes()
    )
    return VoucherPublic.of(voucher)


@router.get(
    "/{event_id}/vouchers",
    response_model=VoucherList,
    responses={k: ERRORS[k] for k in (401, 403, 404)},
    summary="An event's vouchers with their uses (its organizer or an admin)",
    description="`used` counts the bookings holding each voucher (pending or paid), as booking "
    "reported them: it may lag a moment behind.",
)
async def list_vouchers(deps: Deps, event_id: uuid.UUID, user: CurrentUser) -> VoucherList:
    items = await handlers.list_vouchers(deps.db, event_id=event_id, actor=user)
    return VoucherList(items=[VoucherPublic.of(v) for v in items])
