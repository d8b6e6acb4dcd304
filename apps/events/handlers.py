"""Use cases of the events service: ``verb_noun(uow, ...)``; each emits its message."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, Protocol

from apps.events.adapters.repository import EventRepository
from apps.events.adapters.vouchers import VoucherRepository
from apps.events.domain import (
    Event,
    EventNotFound,
    NotAllowed,
    TicketType,
    Voucher,
    VoucherCodeTaken,
    VoucherNotFound,
)
from kit.bindings import OptionalBindings
from kit.db import Database
from kit.uow import UnitOfWork
from kit.pagination import decode_position, page_of
from kit.security import Principal
from contracts import messages
from contracts.messages import (
    BookingDetails,
    EventCancelled,
    EventCreated,
    EventDetails,
    EventUpdated,
    VoucherCreated,
    VoucherDetails,
    VoucherUpdated,
)

log = logging.getLogger(__name__)


# Applies a capacity decrease at booking first (raises if below seats held + sold); see
# apps/events/adapters/booking_capacity.py.
class CapacityGuard(Protocol):
    def __call__(
        self, event_id: uuid.UUID, capacity: int, *, ticket_type_id: uuid.UUID | None = None
    ) -> Awaitable[None]: ...


def _now() -> datetime:
    return datetime.now(UTC)


def snapshot(event: Event, message: type[EventDetails], **extra: Any) -> EventDetails:
    return message(
        event_id=event.id,
        organizer_id=event.organizer_id,
        title=event.title,
        venue=event.venue,
        starts_at=event.starts_at,
        ends_at=event.ends_at,
        capacity=event.capacity,
        price=event.price,
        currency=event.currency,
        status=event.status,
        version=event.version,
        ticket_types=[
            messages.TicketType(
                ticket_type_id=t.id,
                name=t.name,
                price=t.price,
                capacity=t.capacity,
                sales_start=t.sales_start,
                sales_end=t.sales_end,
                max_per_order=t.max_per_order,
            )
            for t in event.ticket_types
        ],
        refund_policy=messages.RefundPolicy(
            self_service=event.refund_policy.self_service,
            deadline_hours_before_start=event.refund_policy.deadline_hours_before_start,
            fee_percent=event.refund_policy.fee_percent,
        ),
        **extra,
    )


async def create_event(uow: UnitOfWork, *, organizer: Principal, fields: dict[str, Any]) -> Event:
    event = Event.create(organizer_id=organizer.user_id, now=_now(), **fields)
    await EventRepository(uow.conn).add(event)
    uow.publish(snapshot(event, EventCreated))
    return event


async def _managed_event(uow: UnitOfWork, event_id: uuid.UUID, actor: Principal) -> Event:
    event = await EventRepository(uow.conn).get(event_id, for_update=True)
    if event is None:
        raise EventNotFound("No such event.")
    if not event.can_be_managed_by(actor.user_id, is_admin=actor.is_admin):
        raise NotAllowed("Only the event's organizer or an admin can change it.")
    return event


async def update_event(
    uow: UnitOfWork,
    *,
    event_id: uuid.UUID,
    actor: Principal,
    changes: dict[str, Any],
    capacity_guard: CapacityGuard | None = None,
) -> Event:
    event = await _managed_event(uow, event_id, actor)
    updated, changed = event.update(changes, now=_now())
    if changed:
        if capacity_guard is not None and updated.capacity < event.capacity:
            # the event row stays locked meanwhile, so decreases reach booking one at a time
            await capacity_guard(event.id, updated.capacity)
        await EventRepository(uow.conn).save(updated, previous=event)
        uow.publish(snapshot(updated, EventUpdated, changed_fields=changed))
    return updated


async def add_ticket_type(
    uow: UnitOfWork, *, event_id: uuid.UUID, actor: Principal, fields: dict[str, Any]
) -> tuple[Event, TicketType]:
    # the event's row stays locked until commit: additions (and the 20-type limit, the unique
    # names, the version) are decided one at a time
    event = await _managed_event(uow, event_id, actor)
    updated, added, changed = event.add_ticket_type(fields, now=_now())
    await EventRepository(uow.conn).save(updated, previous=event)
    uow.publish(snapshot(updated, EventUpdated, changed_fields=changed))
    return updated, added


async def update_ticket_type(
    uow: UnitOfWork,
    *,
    event_id: uuid.UUID,
    ticket_type_id: uuid.UUID,
    actor: Principal,
    changes: dict[str, Any],
    capacity_guard: CapacityGuard | None = None,
) -> tuple[Event, TicketType]:
    """A decrease of the type's own capacity is applied at booking first, as the event's is
    (``update_event``): below the type's seats already held or sold it is refused there (409
    ``capacity-below-booked``) and nothing changes."""
    event = await _managed_event(uow, event_id, actor)
    before = event.ticket_type(ticket_type_id)
    updated, ticket_type, changed = event.update_ticket_type(ticket_type_id, changes, now=_now())
    if changed:
        if (
            capacity_guard is not None
            and ticket_type.capacity is not None
            and (before.capacity is None or ticket_type.capacity < before.capacity)
        ):
            # the event row stays locked meanwhile, so decreases reach booking one at a time
            await capacity_guard(event.id, ticket_type.capacity, ticket_type_id=ticket_type.id)
        await EventRepository(uow.conn).save(updated, previous=event)
        uow.publish(snapshot(updated, EventUpdated, changed_fields=changed))
    return updated, ticket_type


async def cancel_event(
    uow: UnitOfWork, *, event_id: uuid.UUID, actor: Principal, reason: str = ""
) -> Event:
    event = await _managed_event(uow, event_id, actor)
    cancelled = event.cancel(reason=reason, now=_now())
    if cancelled is not event:
        await EventRepository(uow.conn).save(cancelled, previous=event)
        uow.publish(snapshot(cancelled, EventCancelled, reason=reason))
    return cancelled


async def get_event(db: Database, event_id: uuid.UUID) -> Event:
    async with db.read() as conn:
        event = await EventRepository(conn).get(event_id)
    if event is None:
        raise EventNotFound("No such event.")
    return event


async def list_events(
    db: Database,
    *,
    limit: int,
    cursor: str | None,
    organizer_id: uuid.UUID | None = None,
    status: str | None = None,
) -> tuple[list[Event], str | None]:
    after = decode_position(cursor)
    async with db.read() as conn:
        items = await EventRepository(conn).page(
            limit=limit + 1, after=after, organizer_id=organizer_id, status=status
        )
    items, next_cursor = page_of(items, limit, lambda x: (x.starts_at, x.id))
    return items, next_cursor


# --- vouchers ---------------------------------------------------------------------------------


def voucher_snapshot(v: Voucher, message: type[VoucherDetails]) -> VoucherDetails:
    return message(
        voucher_id=v.id,
        event_id=v.event_id,
        code=v.code,
        percent_off=v.percent_off,
        amount_off=v.amount_off,
        max_uses=v.max_uses,
        valid_until=v.valid_until,
        ticket_type_ids=list(v.ticket_type_ids),
        version=v.version,
    )


async def create_voucher(
    uow: UnitOfWork,
    *,
    event_id: uuid.UUID,
    actor: Principal,
    code: str,
    fields: dict[str, Any],
    bindings: OptionalBindings,
) -> Voucher:
    """A new voucher of the event. Booking's messages reach the service from now on, to count
    its uses (``bindings``: they are bound before the voucher is written)."""
    # the event's row stays locked until commit: codes are checked and added one at a time
    event = await _managed_event(uow, event_id, actor)
    repo = VoucherRepository(uow.conn)
    if await repo.by_code(event_id, code) is not None:
        raise VoucherCodeTaken("The event already has a voucher with this code.", field="code")
    voucher = Voucher.create(event, code=code, now=_now(), **fields)
    await bindings.hold(uow.conn, bindings.queues)
    await repo.add(voucher)
    uow.publish(voucher_snapshot(voucher, VoucherCreated))
    return voucher


async def update_voucher(
    uow: UnitOfWork,
    *,
    event_id: uuid.UUID,
    voucher_id: uuid.UUID,
    actor: Principal,
    changes: dict[str, Any],
) -> Voucher:
    """New terms apply to holds made after the change; bookings made keep their discount. A
    ``max_uses`` below the uses already taken stops new uses until enough come back."""
    event = await _managed_event(uow, event_id, actor)
    repo = VoucherRepository(uow.conn)
    voucher = await repo.get(event_id, voucher_id)
    if voucher is None:
        raise VoucherNotFound("The event has no such voucher.")
    updated = voucher.update(event, changes, now=_now())
    if updated is not voucher:
        await repo.save(updated)
        uow.publish(voucher_snapshot(updated, VoucherUpdated))
    return updated


async def list_vouchers(db: Database, *, event_id: uuid.UUID, actor: Principal) -> list[Voucher]:
    """The event's vouchers with their uses, for its organizer or an admin."""
    async with db.read() as conn:
        event = await EventRepository(conn).get(event_id)
        if event is None:
            raise EventNotFound("No such event.")
        if not event.can_be_managed_by(actor.user_id, is_admin=actor.is_admin):
            raise NotAllowed("Only the event's organizer or an admin can see its vouchers.")
        return await VoucherRepository(conn).of_event(event_id)


async def count_voucher_use(msg: BookingDetails, uow: UnitOfWork) -> None:
    """Booking took or gave back a use of one of our vouchers (``voucher_use``): mirror it."""
    if msg.voucher_code is None or not msg.voucher_use:
        return
    if not await VoucherRepository(uow.conn).count_use(
        msg.event_id, msg.voucher_code, msg.voucher_use
    ):
        log.warning("%s names unknown voucher %s", msg.message_type, msg.voucher_code)
