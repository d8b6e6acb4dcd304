"""The booking aggregate and its state machine. No I/O here.

::

    pending ──payment confirmed──▶ confirmed ──cancel (user, event)──▶ cancelled (+ refund)
       │  ╲──payment failed, cancel──▶ cancelled
       ╰──hold lapsed──▶ expired ──payment confirmed──▶ confirmed   (seats re-taken)
                                 ╰─payment confirmed──▶ cancelled   (no seats left: refund)

Every transition says what it does to the seat counters (``held``/``sold`` of the event, the
user's held seats), so the handlers apply exactly that, once, in the same transaction as the
status change. A transition that does not apply to the current status is ``None``: late and
duplicated messages change nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from kit.errors import DomainError

BookingStatus = Literal["pending", "confirmed", "cancelled", "expired"]
CancellationReason = Literal[
    "user_request", "payment_failed", "event_cancelled", "paid_after_expiry", "organizer_refund"
]

# Allowed moves; anything else is a bug (checked by the property-based test).
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"confirmed", "cancelled", "expired"}),
    "confirmed": frozenset({"cancelled"}),
    "expired": frozenset({"confirmed", "cancelled"}),
    "cancelled": frozenset(),
}


class BookingError(DomainError):
    """A rule of the booking model was broken; ``field`` names the offending input if any,
    other keyword arguments travel to the client as extra members of the problem. Each subclass
    says which answer it is."""


class BookingNotFound(BookingError):
    status, code = 404, "booking-not-found"


class EventUnknown(BookingError):
    status, code = 404, "event-not-found"


class EventNotOnSale(BookingError):
    """The event is cancelled."""

    status, code = 409, "event-cancelled"


class EventChanging(BookingError):
    """The event's price kept changing while a booking was being made."""

    status, code = 409, "event-changing"


class NotEnoughSeats(BookingError):
    status, code = 409, "not-enough-seats"


class TooManyTickets(BookingError):
    """More seats in one booking than allowed."""

    field_in, error_type = "body", "too_many_tickets"


class SalesNotStarted(BookingError):
    status, code = 409, "sales-not-started"


class SalesEnded(BookingError):
    """The type's sales window is over, or the event has started."""

    status, code = 409, "sales-ended"


class UnknownTicketType(BookingError):
    field_in, error_type = "body", "unknown_ticket_type"


class BadOrder(BookingError):
    """An order that cannot be taken as written (lines and quantity, attendees' count...)."""

    field_in, error_type = "body", "value_error"


class HoldLimitReached(BookingError):
    """The user already holds as many seats as one user may."""

    status, code = 409, "hold-limit-reached"


class NotCancellable(BookingError):
    status, code = 409, "booking-not-cancellable"


class CapacityBelowBooked(BookingError):
    """A capacity lower than the seats already held or sold."""

    status, code = 409, "capacity-below-booked"


GENERAL_ADMISSION = "General admission"
CENT = Decimal("0.01")


class VoucherUnknown(BookingError):
    """No voucher of this event has that code (a just-created one may take a moment)."""

    field_in, error_type = "body", "unknown_voucher"


class VoucherNotApplicable(BookingError):
    """The voucher applies to none of the order's ticket types."""

    field_in, error_type = "body", "voucher_not_applicable"


class VoucherExhausted(BookingError):
    """The voucher's uses are all taken, or its validity is over."""

    status, code = 409, "voucher-exhausted"


def normalize_voucher_code(code: str) -> str:
    """Codes are matched case-insensitively: stored and looked up upper-case (ASCII only, so
    that no two different codes fold to one)."""
    return code.strip().upper() if code.isascii() else code.strip()


@dataclass(frozen=True)
class Voucher:
    """An event's voucher as booking applies it (from the events service's snapshots)."""

    event_id: uuid.UUID
    code: str
    percent_off: Decimal | None
    amount_off: Decimal | None
    max_uses: int
    valid_until: datetime | None
    ticket_type_ids: frozenset[uuid.UUID]  # empty: every type
    used: int
    version: int
    voucher_id: uuid.UUID

    def applies_to(self, ticket_type_id: uuid.UUID) -> bool:
        return not self.ticket_type_ids or ticket_type_id in self.ticket_type_ids

    def discount_on(self, lines: tuple[Line, ...]) -> Decimal:
        """Taken off an order of ``lines``: a percentage of the eligible lines' total (rounded
        half up to the cent), or a fixed amount capped at that total."""
        eligible = sum(
            (ln.amount for ln in lines if self.applies_to(ln.ticket_type_id)), Decimal("0.00")
        )
        if self.percent_off is not None:
            off = (eligible * self.percent_off / 100).quantize(CENT, rounding=ROUND_HALF_UP)
        else:
            off = self.amount_off or Decimal("0.00")
        return min(off, eligible).quantize(CENT)

    def check_usable(self, lines: tuple[Line, ...], *, now: datetime) -> None:
        """Refuse, from what was read, an order the voucher cannot discount (the reservation
        re-checks uses and validity atomically)."""
        if not any(self.applies_to(ln.ticket_type_id) for ln in lines):
            raise VoucherNotApplicable(
                "This voucher applies to none of these ticket types.", field="voucher_code"
            )
        if self.valid_until is not None and now >= self.valid_until:
            raise VoucherExhausted("This voucher is no longer valid.", voucher_code=self.code)
        if self.used >= self.max_uses:
            raise VoucherExhausted("This voucher has been used up.", voucher_code=self.code)


def general_type_id(event_id: uuid.UUID) -> uuid.UUID:
    """The id of the one implicit type of an event whose snapshot lists no types (snapshots from
    before ticket types existed; migration 0004 gave existing events the same)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{event_id}/general")


@dataclass(frozen=True)
class Line:
    """Seats of one ticket type in a booking, at the price frozen when they were held."""

    ticket_type_id: uuid.UUID
    name: str
    quantity: int
    unit_price: Decimal

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclass(frozen=True)
class Attendee:
    ticket_type_id: uuid.UUID
    name: str
    email: str | None = None


@dataclass(frozen=True)
class SeatChange:
    """What a transition does to the counters: event held/sold seats, the user's held seats."""

    held: int = 0
    sold: int = 0
    user_held: int = 0
    voucher: int = 0  # uses of the booking's voucher: -1 gives one back (see voucher_release)


@dataclass(frozen=True)
class Transition:
    booking: Booking
    previous: BookingStatus
    seats: SeatChange
    refund_due: bool = False
    # The refund asked for it (set by the use case that knows the amount); None: the whole
    # remaining amount, under the id payments derives from the payment.
    refund_id: uuid.UUID | None = None
    refund_amount: Decimal | None = None


@dataclass(frozen=True)
class Booking:
    id: uuid.UUID
    event_id: uuid.UUID
    user_id: uuid.UUID
    quantity: int
    status: BookingStatus
    amount: Decimal
    currency: str
    expires_at: datetime
    created_at: datetime
    updated_at: datetime
    payment_id: uuid.UUID | None = None
    cancellation_reason: CancellationReason | None = None
    discount: Decimal = Decimal("0.00")
    voucher_code: str | None = None
    lines: tuple[Line, ...] = ()
    attendees: tuple[Attendee, ...] = ()

    def with_voucher(self, voucher: Voucher) -> Booking:
        """This new booking with ``voucher``'s discount frozen in (``amount`` after it)."""
        discount = voucher.discount_on(self.lines)
        total = sum((ln.amount for ln in self.lines), Decimal("0.00"))
        amount = max(total - discount, Decimal("0.00"))
        return replace(self, discount=discount, voucher_code=voucher.code, amount=amount)

    @classmethod
    def hold(
        cls,
        *,
        id: uuid.UUID,
        event_id: uuid.UUID,
        user_id: uuid.UUID,
        lines: tuple[Line, ...],
        currency: str,
        now: datetime,
        hold_for: timedelta,
        attendees: tuple[Attendee, ...] = (),
    ) -> Booking:
        """A new booking holding the ``lines``' seats at their prices until ``now + hold_for``."""
        return cls(
            id=id,
            event_id=event_id,
            user_id=user_id,
            quantity=sum(line.quantity for line in lines),
            status="pending",
            amount=sum((line.amount for line in lines), Decimal("0.00")),
            currency=currency,
            expires_at=now + hold_for,
            created_at=now,
            updated_at=now,
            lines=lines,
            attendees=attendees,
        )

    def type_seats(self, seats: SeatChange) -> list[tuple[uuid.UUID, int, int]]:
        """What ``seats`` (a whole-booking change: each count is 0 or ±quantity) does to each of
        the booking's ticket types: ``(ticket_type_id, held, sold)``."""
        held, sold = seats.held // self.quantity, seats.sold // self.quantity
        return [(ln.ticket_type_id, held * ln.quantity, sold * ln.quantity) for ln in self.lines]

    def visible_to(self, user_id: uuid.UUID, *, is_admin: bool) -> bool:
        return is_admin or self.user_id == user_id

    def _to(
        self, status: BookingStatus, seats: SeatChange, now: datetime, **changes: object
    ) -> Transition:
        after = replace(self, status=status, updated_at=now, **changes)  # type: ignore[arg-type]
        return Transition(after, self.status, seats)

    def confirm(self, payment_id: uuid.UUID, *, now: datetime) -> Transition | None:
        """Payment arrived while the seats are held (even if the hold just lapsed but was not
        swept yet: the seats are still ours)."""
        if self.status != "pending":
            return None
        q = self.quantity
        seats = SeatChange(held=-q, sold=q, user_held=-q)
        return self._to("confirmed", seats, now, payment_id=payment_id)

    def confirm_after_expiry(
        self, payment_id: uuid.UUID, *, seats_retaken: bool, now: datetime
    ) -> Transition | None:
        """Payment arrived after the hold lapsed. The handler tried to re-take the seats (they
        are already counted as sold if ``seats_retaken``); otherwise the money goes back."""
        if self.status != "expired":
            return None
        if seats_retaken:
            return self._to("confirmed", SeatChange(), now, payment_id=payment_id)
        t = self._to(
            "cancelled",
            SeatChange(),
            now,
            payment_id=payment_id,
            cancellation_reason="paid_after_expiry",
        )
        return replace(t, refund_due=True)

    def fail_payment(self, *, now: datetime) -> Transition | None:
        if self.status != "pending":
            return None
        return self._release("payment_failed", now)

    def expire(self, *, now: datetime) -> Transition | None:
        if self.status != "pending":
            return None
        q = self.quantity
        return self._to("expired", SeatChange(held=-q, user_held=-q, **self.voucher_release()), now)

    def voucher_release(self) -> dict[str, int]:
        """What releasing an unpaid hold does to its voucher: the use goes back (a paid booking
        keeps it, whatever happens to it later)."""
        return {"voucher": -1} if self.voucher_code is not None else {}

    def cancel(self, reason: CancellationReason, *, now: datetime) -> Transition | None:
        """Cancel a held or paid booking; a paid one is refunded. ``None`` if already over."""
        if self.status == "pending":
            return self._release(reason, now)
        if self.status == "confirmed":
            seats = SeatChange(sold=-self.quantity)
            t = self._to("cancelled", seats, now, cancellation_reason=reason)
            return replace(t, refund_due=True)
        return None

    def _release(self, reason: CancellationReason, now: datetime) -> Transition:
        q = self.quantity
        return self._to(
            "cancelled",
            SeatChange(held=-q, user_held=-q, **self.voucher_release()),
            now,
            cancellation_reason=reason,
        )

    def record_late_payment(self, payment_id: uuid.UUID, *, now: datetime) -> Booking | None:
        """A payment for a booking that is already cancelled: remember it (once) so exactly one
        refund is asked for. ``None`` if this payment is already known."""
        if self.status != "cancelled" or self.payment_id is not None:
            return None
        return replace(self, payment_id=payment_id, updated_at=now)


# --- refunds ----------------------------------------------------------------------------------


class CancellationClosed(BookingError):
    """The event's refund policy no longer lets the buyer cancel a paid booking."""

    status, code = 409, "cancellation-closed"


class NotRefundable(BookingError):
    """Nothing of this booking was paid, so nothing can be refunded."""

    status, code = 409, "booking-not-paid"


class RefundTooLarge(BookingError):
    """More than what was paid and not yet refunded."""

    status, code = 422, "refund-exceeds-remaining"
    field_in, error_type = "body", "refund_exceeds_remaining"


@dataclass(frozen=True)
class RefundPolicy:
    """When and how a buyer may cancel a paid booking themselves (the event's, from events)."""

    self_service: bool = True
    deadline_hours_before_start: int = 48
    fee_percent: Decimal = Decimal("0")

    def self_service_refund(
        self, paid: Decimal, *, starts_at: datetime | None, now: datetime
    ) -> tuple[Decimal, Decimal]:
        """``(refund, fee)`` of a buyer's cancellation of ``paid``, or CancellationClosed."""
        if not self.self_service:
            raise CancellationClosed("This event's paid bookings cannot be cancelled online.")
        if starts_at is not None:
            deadline = starts_at - timedelta(hours=self.deadline_hours_before_start)
            if now >= deadline:
                raise CancellationClosed(
                    "Cancellation closed "
                    f"{self.deadline_hours_before_start} hours before the event starts.",
                    deadline=deadline.isoformat(),
                )
        fee = (paid * self.fee_percent / 100).quantize(CENT, rounding=ROUND_HALF_UP)
        return paid - fee, fee


# --- tickets and check-in ---------------------------------------------------------------------


class TicketUnknown(BookingError):
    """The secret does not verify (forged, altered, not a ticket of ours)."""

    status, code = 404, "unknown-ticket"


class TicketNotFound(BookingError):
    status, code = 404, "ticket-not-found"


class AlreadyRedeemed(BookingError):
    """Scanned before; the problem says when (``redeemed_at``)."""

    status, code = 409, "already-redeemed"


class TicketVoid(BookingError):
    """Its booking was cancelled or refunded."""

    status, code = 409, "ticket-void"


class WrongEvent(BookingError):
    """A genuine ticket, of another event."""

    status, code = 409, "wrong-event"
