"""The waiting list of a sold-out event: its rule (who is served when seats come back) and its
use cases (join, leave, list, serve).

Seats that come back — a hold that lapses or is cancelled, a failed payment, a cancelled or
refunded paid booking, a capacity increase — go to the waiting list first, in the transaction
that frees them (``serve_waitlist``, called by ``handlers._apply``, ``apply_capacity`` and
``apply_event_snapshot``): the entry served gets a pending booking held for it, like any other
(paid the usual way, or it lapses and its seats are served again), and a ``waitlist_offered``
message. The seats never look free to anyone else: the offer's hold is applied at the same
COMMIT that releases them, while the event's rows stay locked.

Who is served — strict FIFO per event: the head of the queue is served as soon as the event
has enough free seats for it; entries behind it wait, even if they would fit, so a large entry
is never starved by small ones (docs/architecture.md, "Waiting list"). An entry that cannot be
served for another reason than the event's seats (its type is off sale or has no seats of its
own left) does not hold the others up. Nor does one whose user already holds so many seats that
the offer would take them past their cap (``MAX_SEATS_HELD_PER_USER`` when they joined, the cap
every hold obeys): it is passed over and keeps its place, served when seats come back once its
user holds fewer (or by the sweeper's safety net, from seats left free meanwhile). An entry is
offered at most once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from apps.booking.adapters.repository import BookingRepository
from apps.booking.adapters.waitlist import EntryRow, FreeSeats, FreeType, WaitlistRepository
from apps.booking.outbound import booking_details
from kit.pagination import decode_cursor, encode_cursor
from kit.problems import BadRequest
from apps.booking.domain import (
    Booking,
    BookingError,
    EventNotOnSale,
    EventUnknown,
    HoldLimitReached,
    Line,
    SalesEnded,
    SalesNotStarted,
    SeatChange,
    TooManyTickets,
    Transition,
    UnknownTicketType,
)
from contracts.messages import BookingCreated, WaitlistOffered
from kit.db import Database
from kit.security import Principal
from kit.uow import UnitOfWork

Repository = type[BookingRepository]


class SeatsAvailable(BookingError):
    """The seats asked for can be booked right now: book them instead of waiting."""

    status, code = 409, "seats-available"


class AlreadyWaiting(BookingError):
    """The user already has an entry in play in this event's list (one per user and event, so
    nobody queues several times to be offered more than one booking's seats)."""

    status, code = 409, "already-on-waitlist"


class WaitlistEntryNotFound(BookingError):
    status, code = 404, "waitlist-entry-not-found"


def _now() -> datetime:
    return datetime.now(UTC)


# --- the rule --------------------------------------------------------------------------------

Fit = Literal["fits", "waits", "skip"]


def _on_sale(t: FreeType, now: datetime) -> bool:
    return (
        t.active
        and (t.sales_start is None or now >= t.sales_start)
        and (t.sales_end is None or now < t.sales_end)
    )


def _type_takes(t: FreeType, quantity: int, now: datetime) -> bool:
    return (
        _on_sale(t, now)
        and (t.free is None or t.free >= quantity)
        and (t.max_per_order is None or quantity <= t.max_per_order)
    )


def offer_for(
    quantity: int, ticket_type_id: uuid.UUID | None, seats: FreeSeats, now: datetime
) -> tuple[Fit, Line | None]:
    """Whether an entry asking ``quantity`` seats (of ``ticket_type_id``, or of any type: the
    first in the event's order that has them all) can be served from ``seats``, and its line.

    ``waits``: the event has fewer free seats than asked; the entries behind wait too (strict
    FIFO). ``skip``: the event has the seats but the entry's type cannot take them (off sale,
    its own capacity full), or the entry asks more than the event's whole capacity: it does not
    hold the others up."""
    if seats.status != "scheduled" or (seats.starts_at is not None and now >= seats.starts_at):
        return "skip", None
    if quantity > seats.capacity:  # more than the event has at all: it holds nobody up
        return "skip", None
    if seats.free < quantity:
        return "waits", None
    for t in seats.types:
        if (ticket_type_id is None or t.ticket_type_id == ticket_type_id) and _type_takes(
            t, quantity, now
        ):
            return "fits", Line(t.ticket_type_id, t.name, quantity, t.price)
    return "skip", None


def _taken(seats: FreeSeats, line: Line) -> FreeSeats:
    """``seats`` once ``line`` is held."""
    types = tuple(
        t
        if t.ticket_type_id != line.ticket_type_id or t.free is None
        else FreeType(**{**t.__dict__, "free": t.free - line.quantity})
        for t in seats.types
    )
    return FreeSeats(
        seats.event_id,
        seats.status,
        seats.currency,
        seats.starts_at,
        seats.free - line.quantity,
        types,
        seats.capacity,
    )


# --- serving the list ------------------------------------------------------------------------


def freed_events(transitions: Iterable[Transition]) -> list[uuid.UUID]:
    """The events whose seats the transitions give back (sorted: the lock order)."""
    return sorted({t.booking.event_id for t in transitions if t.seats.held + t.seats.sold < 0})


@dataclass(frozen=True)
class Offer:
    entry_id: uuid.UUID
    booking: Booking


async def serve_waitlist(
    uow: UnitOfWork, repository: Repository, event_ids: Iterable[uuid.UUID]
) -> list[Offer]:
    """Serve each event's waiting list (in event-id order) from the seats free once this
    transaction commits: for each entry served, a pending booking held for it, its
    ``booking_created`` and a ``waitlist_offered``. Nothing at all for an event nobody waits
    for (one indexed read)."""
    wl = WaitlistRepository(uow.conn)
    offers: list[Offer] = []
    # every event's rows first, in id order, then the users' (the lock order)
    locked: list[FreeSeats] = []
    for event_id in sorted(set(event_ids)):
        if not await wl.has_waiting(event_id):
            continue
        seats = await wl.lock_free_seats(event_id)
        if seats is not None:
            locked.append(seats)
    for seats in locked:
        event_id = seats.event_id
        now = _now()
        for entry in await wl.waiting(event_id):
            if entry.user_held + entry.quantity > entry.max_held_per_user:
                continue  # its user holds too many seats to take it: passed over, keeps its place
            fit, line = offer_for(entry.quantity, entry.ticket_type_id, seats, now)
            if fit == "waits":
                break
            if line is None:
                continue
            booking = Booking.hold(
                id=uuid.uuid4(),
                event_id=event_id,
                user_id=entry.user_id,
                lines=(line,),
                currency=seats.currency,
                now=now,
                hold_for=timedelta(seconds=entry.hold_seconds),
            )
            q = booking.quantity
            # the user's cap, checked and taken atomically (they may be holding elsewhere now)
            if not await wl.take_user_seats(entry.user_id, q, entry.max_held_per_user):
                continue
            if not await wl.mark_offered(entry.id, booking.id, now):
                await wl.give_back_user_seats(entry.user_id, q)
                continue  # it left meanwhile
            await wl.hold_for_offer(booking)
            # after the releases this transaction queued: applied in that order at COMMIT
            await repository(uow.conn).move_seats(
                [Transition(booking, "pending", SeatChange(held=q))]
            )
            seats = _taken(seats, line)
            uow.publish(*_offer_messages(entry.id, booking))
            offers.append(Offer(entry.id, booking))
    return offers


def _offer_messages(entry_id: uuid.UUID, b: Booking) -> list[BookingCreated | WaitlistOffered]:
    created = booking_details(b, BookingCreated, None, expires_at=b.expires_at)
    offered = WaitlistOffered(
        entry_id=entry_id,
        booking_id=b.id,
        event_id=b.event_id,
        user_id=b.user_id,
        quantity=b.quantity,
        amount=b.amount,
        currency=b.currency,
        expires_at=b.expires_at,
        causation_id=created.message_id,
    )
    return [created, offered]


async def serve_stuck_waitlists(uow: UnitOfWork, *, repository: Repository, limit: int) -> int:
    """The safety net the sweeper runs: serve events whose queue head fits in seats that are
    free as committed (seats freed at the very moment someone joined). Offers made."""
    events = await WaitlistRepository(uow.conn).events_to_serve(limit)
    return len(await serve_waitlist(uow, repository, events))


# --- HTTP use cases --------------------------------------------------------------------------


async def join_waitlist(
    uow: UnitOfWork,
    *,
    user: Principal,
    event_id: uuid.UUID,
    ticket_type_id: uuid.UUID | None,
    quantity: int,
    hold_seconds: int,
    max_per_booking: int,
    max_held_per_user: int,
) -> EntryRow:
    """Queue the user for ``quantity`` seats (of a type, or any), only while they cannot be
    booked: decided under the event's lock, so no seats come back unnoticed meanwhile. The
    entry keeps ``hold_seconds`` and ``max_held_per_user`` for its offer."""
    if quantity > max_per_booking:
        raise TooManyTickets(
            f"At most {max_per_booking} seats per booking.", field="quantity", limit=max_per_booking
        )
    if quantity > max_held_per_user:  # its offer could never be made
        raise HoldLimitReached(
            f"One user may hold at most {max_held_per_user} seats at once.",
            limit=max_held_per_user,
        )
    wl = WaitlistRepository(uow.conn)
    seats = await wl.lock_free_seats(event_id)
    if seats is None:
        raise EventUnknown("No such event (a just-created event may take a moment to appear).")
    if seats.status != "scheduled":
        raise EventNotOnSale("The event is cancelled.")
    now = _now()
    if seats.starts_at is not None and now >= seats.starts_at:
        raise SalesEnded("The event has started.")
    # under the event's lock: two joins of one user cannot both pass
    if (entry_id := await wl.live_entry_of(event_id, user.user_id)) is not None:
        raise AlreadyWaiting(
            "You are already on this event's waiting list (leave it to join again).",
            entry_id=str(entry_id),
        )
    if ticket_type_id is not None:
        t = next((t for t in seats.types if t.ticket_type_id == ticket_type_id), None)
        if t is None or not t.active:
            raise UnknownTicketType("No such ticket type for this event.", field="ticket_type_id")
        if t.max_per_order is not None and quantity > t.max_per_order:
            raise TooManyTickets(
                f"At most {t.max_per_order} tickets of {t.name!r} per booking.",
                field="quantity",
                limit=t.max_per_order,
            )
        if t.sales_end is not None and now >= t.sales_end:
            raise SalesEnded(
                f"Sales of {t.name!r} have ended.", ticket_type_id=str(t.ticket_type_id)
            )
        if t.sales_start is not None and now < t.sales_start:
            raise SalesNotStarted(
                f"Sales of {t.name!r} start at {t.sales_start.isoformat()}.",
                ticket_type_id=str(t.ticket_type_id),
            )
    fit, _ = offer_for(quantity, ticket_type_id, seats, now)
    if fit == "fits":
        raise SeatsAvailable(
            "These seats can be booked right now: book them instead.",
            available=seats.free,
        )
    return await wl.add(
        EntryRow(
            id=uuid.uuid4(),
            seq=0,
            event_id=event_id,
            user_id=user.user_id,
            ticket_type_id=ticket_type_id,
            quantity=quantity,
            status="waiting",
            booking_id=None,
            hold_seconds=hold_seconds,
            created_at=now,
            updated_at=now,
            max_held_per_user=max_held_per_user,
        )
    )


async def list_waitlist(
    db: Database, *, user: Principal, limit: int, cursor: str | None = None
) -> tuple[list[EntryRow], str | None]:
    """The user's entries, oldest first, a page of at most ``limit`` at a time, and the cursor
    of the next page (None: the last). The cursor is the place of the page's last entry."""
    after = _seq_of(cursor) if cursor else None
    async with db.read() as conn:
        entries = await WaitlistRepository(conn).of_user(user.user_id, limit + 1, after_seq=after)
    if len(entries) <= limit:
        return entries, None
    entries = entries[:limit]
    return entries, encode_cursor(entries[-1].seq)


def _seq_of(cursor: str) -> int:
    (value,) = decode_cursor(cursor, 1)
    try:
        seq = int(value)
    except ValueError:
        seq = -1
    if not 0 <= seq < 2**63:  # a forged cursor never reaches the database as a bad bigint
        raise BadRequest("The cursor is not valid.", code="invalid-cursor")
    return seq
