"""Use cases of the booking service: ``verb_noun(...)``; each emits its messages through the
unit of work, so a state change and what it tells the world commit together.

Message handlers have the ``(message, uow)`` shape :func:`kit.consuming.consume_once`
expects; HTTP use cases take ``(uow, *, ...)``. Each takes ``repository``, the booking
repository for the service's database (``BookingDeps.repository``, chosen when the service is
built: PostgreSQL's, or its SQLite twin in the embedded mode).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from apps.booking.adapters import refunds
from apps.booking.adapters import tickets as ticketing
from apps.booking.adapters.tickets import Ticket
from apps.booking.adapters.availability import Availability, AvailabilityCache
from apps.booking.adapters.refunds import RefundView
from apps.booking.adapters.waitlist import WaitlistRepository
from apps.booking import waitlist
from apps.booking.outbound import booking_details, refund_requested
from apps.booking.adapters.repository import (
    BookingRepository,
    EventSnapshot,
    Inventory,
    ReserveOutcome,
    TicketTypeSnapshot,
    TypeInventory,
)
from apps.booking.domain import (
    GENERAL_ADMISSION,
    AlreadyRedeemed,
    TicketNotFound,
    TicketUnknown,
    TicketVoid,
    WrongEvent,
    Attendee,
    BadOrder,
    Booking,
    BookingNotFound,
    CapacityBelowBooked,
    EventChanging,
    EventNotOnSale,
    EventUnknown,
    HoldLimitReached,
    NotCancellable,
    NotRefundable,
    RefundPolicy,
    RefundTooLarge,
    Line,
    NotEnoughSeats,
    SalesEnded,
    SalesNotStarted,
    TooManyTickets,
    Transition,
    UnknownTicketType,
    Voucher,
    VoucherExhausted,
    VoucherUnknown,
    general_type_id,
    normalize_voucher_code,
)
from kit.db import Database
from kit.uow import UnitOfWork
from kit.crosscheck import refuse
from kit.listing import read_page
from kit.pagination import Position, decode_position, encode_cursor
from kit.security import Principal
from contracts.envelope import Envelope
from contracts.messages import (
    BookingCancelled,
    BookingConfirmed,
    BookingCreated,
    BookingExpired,
    EventCancelled,
    EventDetails,
    IssuedTicket,
    PaymentConfirmed,
    PaymentFailed,
    PaymentRefunded,
    RefundFailed,
    TicketCheckedIn,
    VoucherDetails,
)

log = logging.getLogger(__name__)

# The booking repository class for the service's database, handed to every use case.
Repository = type[BookingRepository]


def _now() -> datetime:
    return datetime.now(UTC)


def _issued(issued: list[Ticket]) -> list[IssuedTicket]:
    return [
        IssuedTicket(
            ticket_id=t.id,
            ticket_type_id=t.ticket_type_id,
            attendee_name=t.attendee_name,
            secret=t.secret,
        )
        for t in issued
    ]


def voucher_use(t: Transition) -> int:
    """What the transition did to its booking's voucher uses, as its message tells it: given
    back (a seat move), or re-taken with the seats by a payment after expiry."""
    if t.booking.voucher_code is None:
        return 0
    if t.seats.voucher:
        return t.seats.voucher
    return 1 if t.previous == "expired" and t.booking.status == "confirmed" else 0


def _announcements(
    t: Transition, cause: Envelope | None, issued: list[Ticket] | None = None
) -> list[Envelope]:
    """The messages that tell the world about one transition (``issued``: the tickets a
    confirmation issued)."""
    b = t.booking
    used = {"voucher_use": voucher_use(t)}
    if b.status == "confirmed":
        return [
            booking_details(
                b,
                BookingConfirmed,
                cause,
                payment_id=b.payment_id,
                tickets=_issued(issued or []),
                **used,
            )
        ]
    if b.status == "expired":
        return [booking_details(b, BookingExpired, cause, **used)]
    if b.status == "cancelled":
        assert b.cancellation_reason is not None
        refund: list[Envelope] = (
            [
                refund_requested(
                    b,
                    cause,
                    reason=b.cancellation_reason,
                    refund_id=t.refund_id,
                    amount=t.refund_amount,
                )
            ]
            if t.refund_due
            else []
        )
        return [
            *refund,
            booking_details(
                b,
                BookingCancelled,
                cause,
                reason=b.cancellation_reason,
                refund_due=t.refund_due,
                **used,
            ),
        ]
    return []


async def _tickets_for(conn: AsyncConnection, booking: Booking) -> list[Ticket]:
    """The tickets a booking confirmed now gets (signed with its event's key; not stored)."""
    now = _now()
    key = await ticketing.event_key(conn, booking.event_id, now)
    return ticketing.tickets_of(booking, key, now)


async def _apply(
    uow: UnitOfWork,
    repo: BookingRepository,
    transitions: list[Transition],
    cause: Envelope | None,
) -> None:
    """Write the transitions with their seat moves and what goes with them, in the unit of
    work: a confirmed booking's tickets are issued, a cancelled one's voided, and each
    transition announced."""
    await repo.save(transitions)
    await repo.move_seats(transitions)
    cancelled = [t.booking.id for t in transitions if t.booking.status == "cancelled"]
    await ticketing.void_of_bookings(uow.conn, cancelled, _now())
    for t in transitions:
        issued: list[Ticket] = []
        if t.booking.status == "confirmed":
            issued = await _tickets_for(uow.conn, t.booking)
            await ticketing.insert(uow.conn, issued)
        if t.refund_due and t.refund_id is None:  # everything not yet refunded goes back
            t = await _refund_rest(uow, t)
        uow.publish(*_announcements(t, cause, issued))
    # seats given back go to the events' waiting lists first, in this transaction
    await waitlist.serve_waitlist(uow, type(repo), waitlist.freed_events(transitions))


# --- HTTP use cases ---------------------------------------------------------------------------


def _refuse_for_event(seen: Availability | None, quantity: int) -> None:
    """Refuse what the event's availability (as last seen) rules out."""
    if seen is None:
        raise EventUnknown("No such event (a just-created event may take a moment to appear).")
    if seen.status != "scheduled":
        raise EventNotOnSale("The event is cancelled.")
    if seen.available < quantity:
        raise NotEnoughSeats(
            "Not enough seats left.", requested=quantity, available=max(seen.available, 0)
        )


def _check_quantity(quantity: int, max_per_booking: int) -> None:
    if quantity > max_per_booking:
        raise TooManyTickets(
            f"At most {max_per_booking} seats per booking.", field="quantity", limit=max_per_booking
        )


OrderLines = list[tuple[uuid.UUID, int]]  # (ticket_type_id, quantity) as the request lists them


def order_total(quantity: int | None, lines: OrderLines | None) -> int:
    """The seats an order asks for (``quantity``, or the sum of its lines)."""
    if lines:
        return sum(q for _, q in lines)
    return quantity or 0


def refuse_from_memory(
    recently: AvailabilityCache,
    *,
    event_id: uuid.UUID,
    quantity: int,
    max_per_booking: int,
) -> None:
    """Refuse, before any database work, what this replica has just seen to be impossible (a
    sold-out or cancelled event): an on-sale rush's attempts cost no pooled connection. Only
    the event's quota is remembered: a sold-out type never refuses the rest of the event."""
    _check_quantity(quantity, max_per_booking)
    seen = recently.peek(event_id)
    if seen is not None:
        _refuse_for_event(seen, quantity)


def _order_lines(
    types: tuple[TypeInventory, ...],
    quantity: int | None,
    lines: OrderLines | None,
    now: datetime,
) -> tuple[Line, ...]:
    """The booking's lines at the types' current prices, or the 4xx that the order deserves
    from what was read (the reservation re-checks it all atomically)."""
    on_sale = [t for t in types if t.active]
    if lines is None:
        if quantity is None:
            raise BadOrder("Give either quantity or lines.", field="lines")
        if len(on_sale) != 1:
            raise BadOrder(
                "This event has several ticket types: give lines [{ticket_type_id, quantity}].",
                field="quantity",
                ticket_type_ids=[str(t.ticket_type_id) for t in on_sale],
            )
        lines = [(on_sale[0].ticket_type_id, quantity)]
    elif quantity is not None:
        raise BadOrder("Give either quantity or lines, not both.", field="quantity")
    by_id = {t.ticket_type_id: t for t in on_sale}
    out: list[Line] = []
    seen: set[uuid.UUID] = set()
    for n, (type_id, qty) in enumerate(lines):
        t = by_id.get(type_id)
        if t is None:
            raise UnknownTicketType(
                "No such ticket type for this event.", field=f"lines.{n}.ticket_type_id"
            )
        if type_id in seen:
            raise BadOrder("One line per ticket type.", field=f"lines.{n}.ticket_type_id")
        seen.add(type_id)
        # A line over the type's own per-order cap is bad input (422), like the booking-wide cap.
        if t.max_per_order is not None and qty > t.max_per_order:
            raise TooManyTickets(
                f"At most {t.max_per_order} tickets of {t.name!r} per booking.",
                field=f"lines.{n}.quantity",
                limit=t.max_per_order,
            )
        if t.sales_start is not None and now < t.sales_start:
            raise SalesNotStarted(
                f"Sales of {t.name!r} start at {t.sales_start.isoformat()}.",
                ticket_type_id=str(type_id),
                sales_start=t.sales_start.isoformat(),
            )
        if t.sales_end is not None and now >= t.sales_end:
            raise SalesEnded(f"Sales of {t.name!r} have ended.", ticket_type_id=str(type_id))
        out.append(Line(type_id, t.name, qty, t.price))
    return tuple(out)


def _attendees(
    lines: tuple[Line, ...], attendees: list[tuple[str, str | None]] | None
) -> tuple[Attendee, ...]:
    """One attendee per ticket in line order, each of its line's type."""
    if not attendees:
        return ()
    seats = [ln.ticket_type_id for ln in lines for _ in range(ln.quantity)]
    if len(attendees) != len(seats):
        raise BadOrder(
            f"Give one attendee per ticket: {len(seats)}, not {len(attendees)}.",
            field="attendees",
        )
    return tuple(Attendee(t, name, email) for t, (name, email) in zip(seats, attendees))


def _refusal(out: ReserveOutcome, booking: Booking, max_held_per_user: int) -> Exception | None:
    """The error a refused reservation answers (None: refused for a reason to retry or that
    the event's availability explains, see the caller)."""
    line_no = next(
        (n for n, ln in enumerate(booking.lines) if ln.ticket_type_id == out.ticket_type_id), 0
    )
    if out.outcome == "voucher_unknown":
        return VoucherUnknown("No such voucher for this event.", field="voucher_code")
    if out.outcome == "voucher_exhausted":
        return VoucherExhausted(
            "This voucher has been used up or is no longer valid.",
            voucher_code=booking.voucher_code,
        )
    if out.outcome == "hold_limit":
        return HoldLimitReached(
            f"You already hold seats in pending bookings; one user may hold at most "
            f"{max_held_per_user} at once. Pay for or cancel a booking first.",
            limit=max_held_per_user,
        )
    if out.outcome == "sales_ended":
        return SalesEnded(
            "Sales have ended." if out.ticket_type_id else "The event has started.",
            **({"ticket_type_id": str(out.ticket_type_id)} if out.ticket_type_id else {}),
        )
    if out.outcome == "sales_not_started":
        return SalesNotStarted(
            "Sales of this ticket type have not started.", ticket_type_id=str(out.ticket_type_id)
        )
    if out.outcome == "type_unknown":
        return UnknownTicketType(
            "No such ticket type for this event.", field=f"lines.{line_no}.ticket_type_id"
        )
    if out.outcome == "too_many":
        return TooManyTickets(
            "More tickets of this type than one booking may take.",
            field=f"lines.{line_no}.quantity",
        )
    if out.outcome == "sold_out" and out.ticket_type_id is not None:
        ln = booking.lines[line_no]
        return NotEnoughSeats(
            f"Not enough {ln.name!r} tickets left.",
            requested=ln.quantity,
            available=max(out.type_available or 0, 0),
            ticket_type_id=str(ln.ticket_type_id),
        )
    return None


async def _usable_voucher(
    repo: BookingRepository, event_id: uuid.UUID, code: str, order: tuple[Line, ...], now: datetime
) -> Voucher:
    """The event's voucher ``code`` if it can discount ``order`` as read, else the 4xx it
    deserves (the reservation takes its use atomically, re-checking uses and validity)."""
    voucher = await repo.voucher(event_id, code)
    if voucher is None:
        raise VoucherUnknown(
            "No such voucher for this event (a just-created one may take a moment to appear).",
            field="voucher_code",
        )
    voucher.check_usable(order, now=now)
    return voucher


async def _seen(repo: BookingRepository, event_id: uuid.UUID) -> Availability | None:
    inv = await repo.inventory(event_id)
    if inv is None:
        return None
    types = tuple(await repo.ticket_types(event_id))
    return Availability(inv.status, inv.available, inv.price, inv.currency, types)


async def _release_lapsed(uow: UnitOfWork, repository: Repository, event_id: uuid.UUID) -> int:
    """Expire the event's lapsed (not yet swept) holds now, so they make nothing look sold out
    (a buyer's own lapsed hold above all). In its own transaction on PostgreSQL when the
    reservation runs in autocommit (the moves apply at its COMMIT); in the same transaction on
    SQLite (moves apply at once, one writer). Not inside a PostgreSQL transaction (an
    Idempotency-Key request): its moves would only show at its own COMMIT."""
    if uow.autocommit:
        async with UnitOfWork(uow.db) as other:
            n = await expire_overdue_holds(
                other, repository=repository, batch_size=1000, event_id=event_id
            )
            await other.commit()
        return n
    if not uow.db.is_postgres:
        return await expire_overdue_holds(
            uow, repository=repository, batch_size=1000, event_id=event_id
        )
    return 0


async def reserve_seats(
    uow: UnitOfWork,
    *,
    repository: Repository,
    user: Principal,
    event_id: uuid.UUID,
    quantity: int | None = None,
    lines: OrderLines | None = None,
    attendees: list[tuple[str, str | None]] | None = None,
    voucher_code: str | None = None,
    hold_seconds: int,
    max_per_booking: int,
    max_held_per_user: int,
    recently: AvailabilityCache | None = None,
) -> Booking:
    """Hold every line of the order (``quantity`` of the event's only type, or ``lines``) for
    the user, in one statement, or hold nothing and say why not.

    The booking and its ``booking_created`` are built from the event's inventory and types as
    read (or, with ``recently``, as seen a moment ago: enough to refuse a sold-out event without
    a read); the statement re-checks seats, windows and prices atomically and writes it all, or
    changes nothing.
    """
    code = None if voucher_code is None else normalize_voucher_code(voucher_code)
    total = order_total(quantity, lines)
    _check_quantity(total, max_per_booking)
    repo = repository(uow.conn)
    seen = recently.get(event_id) if recently is not None else None
    voucher: Voucher | None = None
    released = False
    for _ in range(3):  # the price changed between the read and the statement: read again
        if seen is None or not seen.types:
            seen = await _seen(repo, event_id)
            if seen is not None and recently is not None:
                recently.put(event_id, seen)
        _refuse_for_event(seen, total)
        assert seen is not None
        now = _now()
        order = _order_lines(seen.types, quantity, lines, now)
        booking = Booking.hold(
            id=uuid.uuid4(),
            event_id=event_id,
            user_id=user.user_id,
            lines=order,
            attendees=_attendees(order, attendees),
            currency=seen.currency,
            now=now,
            hold_for=timedelta(seconds=hold_seconds),
        )
        if code is not None:
            if voucher is None:
                voucher = await _usable_voucher(repo, event_id, code, order, now)
            booking = booking.with_voucher(voucher)
        message = booking_details(
            booking,
            BookingCreated,
            None,
            expires_at=booking.expires_at,
            voucher_use=1 if code is not None else 0,
        )
        # the reservation's own statement writes the row, only if it reserves: a refusal raises
        # below (the unit of work rolls back) or tries again (the message is discarded)
        out = await repo.reserve(
            booking,
            user_cap=max_held_per_user,
            outbox_row=uow.publish(message, inline=True)[0],
            notify=False,  # the unit of work NOTIFYs
            voucher_version=None if voucher is None else voucher.version,
        )
        if out.outcome == "reserved":
            return booking
        uow.discard_messages()
        # the reservation said whether lapsed holds exist (a real sell-out: none, and no more
        # round trips)
        if out.outcome == "sold_out" and out.lapsed and not released:
            released = True
            if await _release_lapsed(uow, repository, event_id):
                seen = None
                if recently is not None:
                    recently.forget(event_id)
                continue
        if (error := _refusal(out, booking, max_held_per_user)) is not None:
            raise error
        if out.outcome in ("price_changed",):
            seen = None
            continue
        if out.outcome == "voucher_changed":  # its terms changed: the discount is computed again
            voucher = None
            continue
        seen = (
            None
            if out.event_status is None
            else Availability(
                out.event_status, out.available or 0, seen.price, seen.currency, seen.types
            )
        )
        if seen is not None and recently is not None:
            recently.put(event_id, seen)
        _refuse_for_event(seen, total)
    raise EventChanging("The event's price changed while booking; try again.")


async def _visible_booking(
    repo: BookingRepository, booking_id: uuid.UUID, actor: Principal, *, for_update: bool
) -> Booking:
    booking = await repo.get(booking_id, for_update=for_update)
    if booking is None or not booking.visible_to(actor.user_id, is_admin=actor.is_admin):
        raise BookingNotFound("No such booking.")
    return booking


async def cancel_booking(
    uow: UnitOfWork, *, repository: Repository, booking_id: uuid.UUID, actor: Principal
) -> Booking:
    """The owner (or an admin) cancels: held seats go back on sale, a paid booking is refunded."""
    repo = repository(uow.conn)
    booking = await _visible_booking(repo, booking_id, actor, for_update=True)
    now = _now()
    t = booking.cancel("user_request", now=now)
    if t is None:
        raise NotCancellable(
            f"A booking that is {booking.status} cannot be cancelled.",
            booking_status=booking.status,
        )
    if t.refund_due:  # paid: the event's refund policy says whether and how much goes back
        if await ticketing.any_redeemed(uow.conn, booking.id):
            raise NotCancellable(
                "A ticket of this booking was already scanned in: it can no longer be "
                "cancelled (the event's organizer can still refund it).",
                booking_status=booking.status,
            )
        t = await _refund_by_policy(uow, t, actor=actor, now=now)
    await _apply(uow, repo, [t], None)
    return t.booking


async def apply_capacity(
    uow: UnitOfWork,
    *,
    repository: Repository,
    event_id: uuid.UUID,
    capacity: int,
    actor: Principal,
    ticket_type_id: uuid.UUID | None = None,
) -> Inventory | None:
    """Set an event's capacity, or one of its ticket types' own capacity, now (asked
    synchronously by the events service before it commits a decrease), unless it is below the
    seats already held or sold. None: event (or type) not known yet."""
    repo = repository(uow.conn)
    # Who asks is checked on a plain read before any write: a stranger's request neither
    # changes the event nor waits on (locks) its hot inventory row. The organizer never changes.
    known = await repo.inventory(event_id)
    if known is None:
        return None
    if not actor.is_admin and known.organizer_id != actor.user_id:
        raise EventUnknown("No such event.")
    if ticket_type_id is not None:
        typed = await repo.set_type_capacity(event_id, ticket_type_id, capacity)
        if typed is None:
            return None
        applied, held, sold = typed
        if not applied:
            raise CapacityBelowBooked(
                f"Capacity {capacity} is below the {held + sold} seats of this ticket type "
                "already held or sold.",
                field="capacity",
                held=held,
                sold=sold,
            )
        return known
    row = await repo.set_capacity(event_id, capacity)
    if row is None:
        return None
    if not row.applied:
        raise CapacityBelowBooked(
            f"Capacity {capacity} is below the {row.held + row.sold} seats already held or sold.",
            field="capacity",
            held=row.held,
            sold=row.sold,
        )
    await waitlist.serve_waitlist(uow, repository, [event_id])  # more seats: the list first
    return await repo.inventory(event_id)


async def get_booking(
    db: Database, booking_id: uuid.UUID, actor: Principal, *, repository: Repository
) -> Booking:
    async with db.read() as conn:
        return await _visible_booking(repository(conn), booking_id, actor, for_update=False)


async def list_bookings(
    db: Database,
    *,
    repository: Repository,
    actor: Principal,
    limit: int,
    cursor: str | None,
    user_id: uuid.UUID | None = None,
    event_id: uuid.UUID | None = None,
    status: str | None = None,
) -> tuple[list[Booking], str | None]:
    """The caller's bookings, newest first; admins see everybody's (or one user's)."""
    if not actor.is_admin:
        user_id = actor.user_id
    return await read_page(
        db,
        lambda conn, before, n: repository(conn).page(
            limit=n,
            before=before,
            user_id=user_id,
            event_id=event_id,
            status=status,  # type: ignore[arg-type]
        ),
        limit=limit,
        cursor=cursor,
    )


async def get_inventory(
    db: Database, event_id: uuid.UUID, *, repository: Repository
) -> Inventory | None:
    async with db.read() as conn:
        return await repository(conn).inventory(event_id)


# --- the hold-expiry sweeper ------------------------------------------------------------------


async def expire_overdue_holds(
    uow: UnitOfWork,
    *,
    repository: Repository,
    batch_size: int,
    event_id: uuid.UUID | None = None,
) -> int:
    """Expire up to ``batch_size`` lapsed holds and put their seats back on sale.

    Rows another sweeper (replica) is working on are skipped, so each hold is expired, and its
    seats released, exactly once.
    """
    now = _now()
    repo = repository(uow.conn)
    overdue = await repo.lock_overdue(batch_size, event_id=event_id)
    transitions = [t for b in overdue if (t := b.expire(now=now)) is not None]
    await _apply(uow, repo, transitions, None)
    return len(transitions)


# --- message handlers -------------------------------------------------------------------------


async def apply_event_snapshot(
    msg: EventDetails, uow: UnitOfWork, *, repository: Repository
) -> None:
    """Keep the event's inventory (capacity, price, status, start) and its ticket types up to
    date; older snapshots lose. A snapshot without types (from before they existed) has one,
    "General admission" at the event's price, with a stable id (``general_type_id``)."""
    types = [
        TicketTypeSnapshot(
            ticket_type_id=t.ticket_type_id,
            name=t.name,
            price=t.price,
            capacity=t.capacity,
            sales_start=t.sales_start,
            sales_end=t.sales_end,
            max_per_order=t.max_per_order,
        )
        for t in msg.ticket_types
    ] or [TicketTypeSnapshot(general_type_id(msg.event_id), GENERAL_ADMISSION, msg.price)]
    await repository(uow.conn).apply_snapshot(
        EventSnapshot(
            event_id=msg.event_id,
            organizer_id=msg.organizer_id,
            capacity=msg.capacity,
            price=msg.price,
            currency=msg.currency,
            status=msg.status,
            version=msg.version,
            starts_at=msg.starts_at,
            ticket_types=types,
        )
    )
    await refunds.apply_policy(
        uow.conn, event_id=msg.event_id, version=msg.version, policy=_policy(msg)
    )
    await waitlist.serve_waitlist(uow, repository, [msg.event_id])  # more seats: the list first


async def apply_voucher_snapshot(
    msg: VoucherDetails, uow: UnitOfWork, *, repository: Repository
) -> None:
    """Keep the event's voucher's terms up to date (older snapshots lose); its uses are counted
    here, never taken from the message."""
    await repository(uow.conn).apply_voucher(
        Voucher(
            event_id=msg.event_id,
            code=msg.code,
            percent_off=msg.percent_off,
            amount_off=msg.amount_off,
            max_uses=msg.max_uses,
            valid_until=msg.valid_until,
            ticket_type_ids=frozenset(msg.ticket_type_ids),
            used=0,
            version=msg.version,
            voucher_id=msg.voucher_id,
        )
    )


async def cancel_event_bookings(
    msg: EventCancelled, uow: UnitOfWork, *, repository: Repository
) -> None:
    """The event is off: stop selling, cancel its open bookings, refund the paid ones."""
    repo = repository(uow.conn)
    # first: locks the inventory, no new hold gets in
    await apply_event_snapshot(msg, uow, repository=repository)
    now = _now()
    open_bookings = await repo.lock_open_of_event(msg.event_id)
    transitions = [t for b in open_bookings if (t := b.cancel("event_cancelled", now=now))]
    await _apply(uow, repo, transitions, msg)


def check_payment(booking: Booking | None, msg: PaymentConfirmed | PaymentFailed) -> Booking:
    """The booking a payment message names, if the message agrees with it: same user, same
    amount, same currency. Payments takes all three from our own ``booking_created``, so a
    message that differs is forged or broken: refused (dead-lettered at once, counted), never
    applied, so a compromised service cannot confirm a booking it did not charge in full.
    Amount, currency and user of a booking never change once made, so checking them on a read
    holds however the transition is written afterwards (one statement or unit of work)."""
    if booking is None:
        # Payments only knows bookings we announced: park it for a human, never drop money.
        refuse(
            msg, "unknown_booking", f"payment {msg.payment_id} for unknown booking {msg.booking_id}"
        )
    if msg.user_id != booking.user_id:
        refuse(msg, "user_mismatch", f"booking {booking.id} is not user {msg.user_id}'s")
    if msg.currency != booking.currency:
        refuse(
            msg,
            "currency_mismatch",
            f"booking {booking.id} is due in {booking.currency}, paid in {msg.currency}",
        )
    if msg.amount != booking.amount:
        refuse(
            msg,
            "amount_mismatch",
            f"booking {booking.id} is due {booking.amount}, paid {msg.amount}",
        )
    return booking


async def _booking_for_payment(
    repo: BookingRepository, msg: PaymentConfirmed | PaymentFailed
) -> Booking:
    return check_payment(await repo.get(msg.booking_id, for_update=True), msg)


async def confirm_booking(
    msg: PaymentConfirmed, uow: UnitOfWork, *, repository: Repository
) -> None:
    """Paid: the seats are sold. Paid after the hold lapsed: re-take the seats if still free,
    else cancel and refund. Paid for a cancelled booking: refund. The user is told either way
    (``booking_confirmed`` / ``booking_cancelled`` with ``refund_due``; a refund of an already
    cancelled booking is announced by payments' ``payment_refunded``)."""
    repo = repository(uow.conn)
    booking = await _booking_for_payment(repo, msg)
    now = _now()
    if booking.status == "pending":
        t = booking.confirm(msg.payment_id, now=now)
    elif booking.status == "expired":
        retaken = await repo.retake_seats(booking)
        t = booking.confirm_after_expiry(msg.payment_id, seats_retaken=retaken, now=now)
    elif booking.status == "cancelled":
        late = booking.record_late_payment(msg.payment_id, now=now)
        if late is not None and await repo.record_payment(late):
            assert late.cancellation_reason is not None
            # Recorded as the booking's refund of everything paid (shown on the booking, and
            # nothing more can be asked for it), named by the payment; ``late`` carries its id.
            refund_id = await _ask_refund(
                uow,
                late,
                late.amount,
                reason=late.cancellation_reason,
                by=None,
                now=now,
                refund_id=uuid.uuid5(late.id, f"late-payment-{msg.payment_id}"),
            )
            uow.publish(
                refund_requested(
                    late,
                    msg,
                    reason=late.cancellation_reason,
                    refund_id=refund_id,
                    # (nothing to give back for a free booking: "all that was captured")
                    amount=late.amount if refund_id is not None and late.amount > 0 else None,
                )
            )
        return
    else:  # confirmed already: a duplicate (or a second charge, see the report)
        if booking.payment_id != msg.payment_id:
            log.warning(
                "booking %s is already paid by %s; another payment %s arrived",
                booking.id,
                booking.payment_id,
                msg.payment_id,
            )
        return
    if t is not None:
        await _apply(uow, repo, [t], msg)


async def _pending_at_once(
    db: Database,
    consumer: str,
    msg: PaymentConfirmed | PaymentFailed,
    decide: Callable[[Booking], Transition | None],
    repository: Repository,
) -> bool:
    """The common case of a payment message, a pending booking, in one statement (PostgreSQL):
    read the booking, decide its transition, then write it with its seat moves, inbox mark and
    message only if the booking is still pending and the message new (no lock held between the
    two round trips). False, nothing written, for anything else (another status, a duplicate, a
    change in between): the caller then runs the unit-of-work handler, which decides it all."""
    if not db.is_postgres:
        return False
    async with UnitOfWork(db, single_statement=True) as uow:
        repo = repository(uow.conn)
        booking = await repo.get(msg.booking_id)
        if booking is None:
            return False  # the handler refuses it
        check_payment(booking, msg)  # a forged message is refused here too, never written
        if booking.status != "pending" or (t := decide(booking)) is None:
            return False
        if waitlist.freed_events([t]) and await WaitlistRepository(uow.conn).has_waiting(
            booking.event_id
        ):
            return False  # its seats go to the waiting list: the handler's transaction does it
        # a confirmation's tickets are written by the same statement (the key is made first,
        # on its own: an event's key without tickets is harmless)
        issued = await _tickets_for(uow.conn, booking) if t.booking.status == "confirmed" else []
        messages = _announcements(t, msg, issued)
        if len(messages) != 1:
            return False
        # written by save_once's statement if it applies; if not, nothing is committed
        row = uow.publish(*messages, inline=True)[0]
        if not await repo.save_once(
            t, consumer=consumer, message_id=msg.message_id, outbox_row=row, issued=issued
        ):
            return False
        await uow.commit()
    return True


async def confirm_pending(
    db: Database, consumer: str, msg: PaymentConfirmed, *, repository: Repository
) -> bool:
    """:func:`confirm_booking` of a pending booking in one statement; False: not done."""
    return await _pending_at_once(
        db, consumer, msg, lambda b: b.confirm(msg.payment_id, now=_now()), repository
    )


async def fail_pending(
    db: Database, consumer: str, msg: PaymentFailed, *, repository: Repository
) -> bool:
    """:func:`fail_booking` of a pending booking in one statement; False: not done."""
    return await _pending_at_once(
        db, consumer, msg, lambda b: b.fail_payment(now=_now()), repository
    )


async def fail_booking(msg: PaymentFailed, uow: UnitOfWork, *, repository: Repository) -> None:
    """The charge failed: a pending booking is cancelled and its seats go back on sale. A late
    failure (the booking is already paid, expired or cancelled) changes nothing."""
    repo = repository(uow.conn)
    booking = await _booking_for_payment(repo, msg)
    t = booking.fail_payment(now=_now())
    if t is not None:
        await _apply(uow, repo, [t], msg)


# --- refunds and the organizer's view ---------------------------------------------------------
#
# Every refund booking asks is named (its id travels in refund_requested and comes back in
# payment_refunded / refund_failed), recorded in booking_refunds as pending, and first taken from
# the booking's refund_requested_total by one conditional UPDATE: concurrent requests can never
# ask back more than was paid. Payments enforces the same limit on what it captured.


def _policy(msg: EventDetails) -> RefundPolicy:
    p = msg.refund_policy
    return RefundPolicy(p.self_service, p.deadline_hours_before_start, p.fee_percent)


async def _ask_refund(
    uow: UnitOfWork,
    booking: Booking,
    amount: Decimal,
    *,
    fee: Decimal = Decimal("0.00"),
    reason: str,
    by: uuid.UUID | None,
    now: datetime,
    refund_id: uuid.UUID | None = None,
    note: str | None = None,
) -> uuid.UUID | None:
    """Take ``amount`` from what the booking may still have refunded and record the refund as
    pending; its id. None: more than is left (nothing changed)."""
    if amount > 0 and await refunds.take(uow.conn, booking.id, amount) is None:
        return None
    refund = refunds.RefundView(
        id=refund_id or uuid.uuid4(),
        booking_id=booking.id,
        amount=amount,
        fee=fee,
        # nothing to give back (a 100% fee): there is no answer to wait for
        status="pending" if amount > 0 else "succeeded",
        reason=reason,
        created_at=now,
        note=note,
    )
    await refunds.add(uow.conn, refund, by=by)
    return refund.id


async def _refund_rest(uow: UnitOfWork, t: Transition) -> Transition:
    """A cancellation that refunds everything not yet refunded (the event is cancelled, a late
    payment): the booking row is locked by the caller, so what is left is read exactly."""
    b = t.booking
    rest = b.amount - await refunds.asked(uow.conn, b.id)
    assert b.cancellation_reason is not None
    if rest <= 0:  # refunded already (by its organizer)
        return replace(t, refund_due=False)
    refund_id = await _ask_refund(
        uow,
        b,
        rest,
        reason=b.cancellation_reason,
        by=None,
        now=_now(),
        # a booking is cancelled once: its "rest" refund is named by the booking
        refund_id=uuid.uuid5(b.id, "refund-rest"),
    )
    if refund_id is None:
        return replace(t, refund_due=False)
    return replace(t, refund_id=refund_id, refund_amount=rest)


async def _refund_by_policy(
    uow: UnitOfWork, t: Transition, *, actor: Principal, now: datetime
) -> Transition:
    """The buyer cancels a paid booking: refunded in full minus the policy's fee, while the
    policy allows it (else CancellationClosed, and the unit of work changes nothing)."""
    b = t.booking
    known = await refunds.terms(uow.conn, b.event_id)
    policy, starts_at = (
        (known.policy, known.starts_at) if known is not None else (RefundPolicy(), None)
    )
    paid = b.amount - await refunds.asked(uow.conn, b.id)  # an organizer may have refunded part
    amount, fee = policy.self_service_refund(paid, starts_at=starts_at, now=now)
    refund_id = await _ask_refund(
        uow, b, amount, fee=fee, reason="user_request", by=actor.user_id, now=now
    )
    if refund_id is None:  # the booking row is locked: cannot happen, but never over-ask
        raise RefundTooLarge("Nothing is left to refund.", field="amount")
    if amount <= 0:
        return replace(t, refund_due=False)
    return replace(t, refund_id=refund_id, refund_amount=amount)


async def _organized_booking(
    repo: BookingRepository, conn: AsyncConnection, booking_id: uuid.UUID, actor: Principal
) -> Booking:
    """The booking, locked, if ``actor`` organizes its event (or is an admin); else 404."""
    booking = await repo.get(booking_id, for_update=True)
    if booking is not None and not actor.is_admin:
        known = await refunds.terms(conn, booking.event_id)
        if known is None or known.organizer_id != actor.user_id:
            booking = None
    if booking is None:
        raise BookingNotFound("No such booking.")
    return booking


async def refund_booking(
    uow: UnitOfWork,
    *,
    repository: Repository,
    booking_id: uuid.UUID,
    actor: Principal,
    amount: Decimal | None = None,
    note: str | None = None,
) -> Booking:
    """The event's organizer (or an admin) refunds ``amount`` of a paid booking (None: all that
    is left), at any time, ``note`` being their reason (kept with the refund). More than is
    left is refused (RefundTooLarge) by the conditional UPDATE itself, whatever runs at once.
    The refund that completes the total cancels a booking that is still confirmed (its seats go
    back on sale)."""
    repo = repository(uow.conn)
    booking = await _organized_booking(repo, uow.conn, booking_id, actor)
    if booking.payment_id is None:
        raise NotRefundable(f"This booking is {booking.status} and was never paid.")
    asked = await refunds.asked(uow.conn, booking.id)
    left = booking.amount - asked
    if amount is None:
        amount = left
    if amount <= 0 or amount > left:
        raise RefundTooLarge(
            f"At most {left} of this booking can still be refunded.",
            field="amount",
            refundable=str(left),
        )
    now = _now()
    refund_id = await _ask_refund(
        uow, booking, amount, reason="organizer_refund", by=actor.user_id, now=now, note=note
    )
    if refund_id is None:  # another refund took it first
        raise RefundTooLarge("More than what can still be refunded.", field="amount")
    if amount == left and (t := booking.cancel("organizer_refund", now=now)) is not None:
        t = replace(t, refund_id=refund_id, refund_amount=amount)
        await _apply(uow, repo, [t], None)
        return t.booking
    uow.publish(
        refund_requested(
            booking, None, reason="organizer_refund", refund_id=refund_id, amount=amount
        )
    )
    return booking


async def settle_refund(msg: PaymentRefunded, uow: UnitOfWork) -> None:
    """Payments made the refund: it shows ``succeeded``. One booking did not name (asked before
    refunds had ids) changes nothing."""
    if (
        msg.refund_id is None
        or await refunds.settle(uow.conn, msg.refund_id, "succeeded", now=_now()) is None
    ):
        log.info("payment_refunded %s: no pending refund %s here", msg.message_id, msg.refund_id)


async def fail_refund(msg: RefundFailed, uow: UnitOfWork) -> None:
    """Payments did not make the refund: it shows ``failed`` and its amount can be asked again."""
    if msg.refund_id is None:
        return
    settled = await refunds.settle(uow.conn, msg.refund_id, "failed", now=_now())
    if settled is not None:
        booking_id, amount = settled
        await refunds.give_back(uow.conn, booking_id, amount)


async def refunds_of(
    db: Database, booking_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[RefundView]]:
    """Every refund of each booking that has one, oldest first: a failed one stays listed (its
    amount may be asked again) whatever was asked after it."""
    async with db.read() as conn:
        return await refunds.of_bookings(conn, booking_ids)


async def event_bookings(
    db: Database,
    *,
    repository: Repository,
    actor: Principal,
    event_id: uuid.UUID,
    limit: int,
    cursor: str | None,
) -> tuple[list[Booking], str | None]:
    """The event's bookings, newest first, for its organizer or an admin (others: 404)."""

    async def fetch(conn: AsyncConnection, before: Position | None, n: int) -> list[Booking]:
        await _organize(conn, event_id, actor)
        return await repository(conn).page(
            limit=n, before=before, user_id=None, event_id=event_id, status=None
        )

    return await read_page(db, fetch, limit=limit, cursor=cursor)


# --- tickets and check-in ---------------------------------------------------------------------
#
# Tickets are issued by _apply (or the one-statement confirmation) with the booking's
# confirmation and voided with its cancellation. Redeeming is one conditional UPDATE
# (adapters/tickets.py): whatever number of scanners scan one ticket at once, one wins.


async def _organize(conn: AsyncConnection, event_id: uuid.UUID, actor: Principal) -> None:
    """Nothing, if ``actor`` organizes the event or is an admin; else 404 (never say whether
    the event exists)."""
    known = await refunds.terms(conn, event_id)
    if known is None or not (actor.is_admin or known.organizer_id == actor.user_id):
        raise EventUnknown("No such event.")


async def _may_see(
    conn: AsyncConnection, repository: Repository, booking_id: uuid.UUID, actor: Principal
) -> None:
    """Nothing, if ``actor`` owns the booking, organizes its event or is an admin; else 404."""
    booking = await repository(conn).get(booking_id)
    if booking is None:
        raise BookingNotFound("No such booking.")
    if booking.visible_to(actor.user_id, is_admin=actor.is_admin):
        return
    known = await refunds.terms(conn, booking.event_id)
    if known is None or known.organizer_id != actor.user_id:
        raise BookingNotFound("No such booking.")


async def booking_tickets(
    db: Database, *, repository: Repository, booking_id: uuid.UUID, actor: Principal
) -> list[Ticket]:
    """The booking's tickets (none before it is confirmed), for its owner, its event's
    organizer or an admin."""
    async with db.read() as conn:
        await _may_see(conn, repository, booking_id, actor)
        return await ticketing.of_booking(conn, booking_id)


async def get_ticket(
    db: Database, *, repository: Repository, ticket_id: uuid.UUID, actor: Principal
) -> Ticket:
    async with db.read() as conn:
        ticket = await ticketing.get(conn, ticket_id)
        if ticket is None:
            raise TicketNotFound("No such ticket.")
        try:
            await _may_see(conn, repository, ticket.booking_id, actor)
        except BookingNotFound:
            raise TicketNotFound("No such ticket.") from None
        return ticket


async def checkin_key(uow: UnitOfWork, *, event_id: uuid.UUID, actor: Principal) -> dict[str, str]:
    """The public JWK that verifies the event's ticket secrets (made now if no ticket was
    issued yet), for its organizer or an admin."""
    await _organize(uow.conn, event_id, actor)
    return ticketing.public_jwk(await ticketing.event_key(uow.conn, event_id, _now()))


ScanResult = str  # "redeemed" or the problem code of a refused scan


async def scan_ticket(
    uow: UnitOfWork,
    *,
    event_id: uuid.UUID,
    secret: str,
    actor: Principal,
    scanned_at: datetime | None = None,
) -> tuple[ScanResult, Ticket | None]:
    """One scan at the event's entrance: ``("redeemed", ticket)`` for the ticket's first
    scan (announced with ``ticket_checked_in``), else why not: ``already-redeemed`` (the
    ticket, with the first scan's time), ``ticket-void``, ``wrong-event``, ``unknown-ticket``.
    ``scanned_at``: when an offline scanner saw it (never later than now, never earlier than
    the ticket's issue: a scanner's clock may be wrong either way); the earliest scan of a
    ticket is the one whose time is kept. The caller has checked that ``actor`` may scan for
    the event and commits."""
    claims = await ticketing.verify(uow.conn, secret)
    if claims is None:
        return "unknown-ticket", None
    if claims.event_id != event_id:
        return "wrong-event", None
    now = _now()
    at = min(scanned_at, now) if scanned_at is not None else now
    ticket = await ticketing.redeem(uow.conn, claims.ticket_id, at, now)
    if ticket is not None:
        assert ticket.redeemed_at is not None  # ``at``, or the ticket's issue if earlier
        uow.publish(
            TicketCheckedIn(
                ticket_id=ticket.id,
                booking_id=ticket.booking_id,
                event_id=ticket.event_id,
                ticket_type_id=ticket.ticket_type_id,
                redeemed_at=ticket.redeemed_at,
                checked_in_by=actor.user_id,
            )
        )
        return "redeemed", ticket
    current = await ticketing.get(uow.conn, claims.ticket_id)
    if current is None:  # signed, but its booking's confirmation never committed
        return "unknown-ticket", None
    if current.status == "void":
        return "ticket-void", current
    if scanned_at is not None and current.redeemed_at is not None and at < current.redeemed_at:
        await ticketing.keep_earliest(uow.conn, current.id, at, now)
        current = await ticketing.get(uow.conn, current.id)
    return "already-redeemed", current


async def check_in(
    uow: UnitOfWork, *, event_id: uuid.UUID, secret: str, actor: Principal
) -> Ticket:
    """Redeem the ticket whose QR code was scanned, or the problem that says why not."""
    await _organize(uow.conn, event_id, actor)
    result, ticket = await scan_ticket(uow, event_id=event_id, secret=secret, actor=actor)
    if result == "redeemed":
        assert ticket is not None
        return ticket
    if result == "already-redeemed":
        assert ticket is not None and ticket.redeemed_at is not None
        raise AlreadyRedeemed(
            "This ticket was already scanned.",
            redeemed_at=ticket.redeemed_at.isoformat(),
            ticket_id=str(ticket.id),
        )
    if result == "ticket-void":
        raise TicketVoid("This ticket's booking was cancelled or refunded.")
    if result == "wrong-event":
        raise WrongEvent("This ticket is for another event.")
    raise TicketUnknown("Not a ticket of this platform.")


async def upload_scans(
    db: Database, *, event_id: uuid.UUID, scans: list[tuple[str, datetime]], actor: Principal
) -> list[tuple[ScanResult, Ticket | None]]:
    """An offline scanner's scans, each redeemed (or refused) as if scanned at its time, in
    its own transaction: ``(result, ticket)`` per scan, in order."""
    async with db.read() as conn:
        await _organize(conn, event_id, actor)
    out = []
    for secret, scanned_at in scans:
        async with UnitOfWork(db) as uow:
            out.append(
                await scan_ticket(
                    uow, event_id=event_id, secret=secret, actor=actor, scanned_at=scanned_at
                )
            )
            await uow.commit()
    return out


async def checkin_counts(db: Database, *, event_id: uuid.UUID, actor: Principal) -> tuple[int, int]:
    """``(tickets, redeemed)`` of the event (void tickets not counted)."""
    async with db.read() as conn:
        await _organize(conn, event_id, actor)
        return await ticketing.counts(conn, event_id)


# A change list stops this long before now: a transaction that stamped a ticket a moment ago
# may not have committed yet, and a cursor past it would skip it for good.
CHANGES_SETTLE = timedelta(seconds=2)


async def checkin_changes(
    db: Database, *, event_id: uuid.UUID, actor: Principal, cursor: str | None, limit: int
) -> tuple[list[Ticket], str | None, bool]:
    """The event's tickets changed since ``cursor`` (all of them without one), oldest change
    first, settled changes only (up to :data:`CHANGES_SETTLE` ago): ``(tickets, cursor to
    pass next time, whether more are waiting)``."""
    after = decode_position(cursor)
    async with db.read() as conn:
        await _organize(conn, event_id, actor)
        rows = await ticketing.changed_since(
            conn, event_id, after, _now() - CHANGES_SETTLE, limit + 1
        )
    more = len(rows) > limit
    rows = rows[:limit]
    if rows:
        cursor = encode_cursor(rows[-1].changed_at.isoformat(), rows[-1].id)
    return rows, cursor, more


# --- the waiting list ---------------------------------------------------------------------


async def leave_waitlist(
    uow: UnitOfWork, *, repository: Repository, user: Principal, entry_id: uuid.UUID
) -> None:
    """The user leaves the list. Leaving with an open offer declines it: the pending booking is
    cancelled and its seats go to the next entry. Leaving after the offer was paid, lapsed or
    cancelled only takes the entry off the user's list."""
    wl = WaitlistRepository(uow.conn)
    entry = await wl.get(entry_id)
    if entry is None or not (entry.user_id == user.user_id or user.is_admin):
        raise waitlist.WaitlistEntryNotFound("No such waiting-list entry.")
    if entry.status == "left":
        return
    if entry.status == "waiting":
        # the event's rows first (the lock order: a serve holds them, then takes entries); the
        # entries behind may fit now that this one is out of their way
        await wl.lock_free_seats(entry.event_id)
        await wl.mark_left(entry.id, _now())
        await waitlist.serve_waitlist(uow, repository, [entry.event_id])
        return
    if entry.booking_id is not None and entry.booking_status == "pending":
        repo = repository(uow.conn)
        booking = await repo.get(entry.booking_id, for_update=True)  # bookings first
        if booking is not None and (t := booking.cancel("user_request", now=_now())) is not None:
            await _apply(uow, repo, [t], None)
    await wl.mark_left(entry.id, _now())
