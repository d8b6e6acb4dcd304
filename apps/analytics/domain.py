"""The analytics read model and the report arithmetic. No I/O here.

Facts can arrive twice (the inbox drops the copy) and out of order (a confirmation before the
hold it confirms). So each booking and payment keeps one timestamp per transition, set by the
first fact of that kind and never moved later: a transition is counted once however many
messages tell of it, and whatever their order. A booking's current status is the latest of its
transitions.

Every figure of a report counts transitions whose fact *occurred* inside the window
``from <= occurred_at < to``: "bookings confirmed between Monday and Friday".
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal

from contracts.messages import implied_ticket_type_id
from kit.errors import DomainError

BookingStatus = Literal["pending", "confirmed", "cancelled", "expired"]
BookingTransition = Literal["created", "confirmed", "cancelled", "expired"]
PaymentStatus = Literal["succeeded", "failed", "refunded"]
PaymentTransition = Literal["succeeded", "failed", "refunded"]

# Which status a transition leads to, and which wins when two carry the same timestamp (the
# repository's one-statement upserts compute the same from these tables).
BOOKING_STATUS: dict[BookingTransition, tuple[int, BookingStatus]] = {
    "created": (0, "pending"),
    "confirmed": (1, "confirmed"),
    "expired": (2, "expired"),
    "cancelled": (3, "cancelled"),
}
PAYMENT_STATUS: dict[PaymentTransition, tuple[int, PaymentStatus]] = {
    "succeeded": (0, "succeeded"),
    "failed": (1, "failed"),
    "refunded": (2, "refunded"),
}

CONVERSION_PLACES = Decimal("0.0001")


class AnalyticsError(DomainError):
    """A report cannot be made as asked; ``field`` names the offending query parameter if any."""

    field_in = "query"


class ReportNotFound(AnalyticsError):
    """The event is unknown, or not the caller's (the two look the same from outside)."""

    status, code = 404, "event-not-found"


class InvalidWindow(AnalyticsError):
    pass


def _earliest(current: datetime | None, at: datetime) -> datetime:
    return at if current is None or at < current else current


@dataclass(frozen=True)
class EventRecord:
    """What analytics knows of an event: the latest snapshot (highest ``version``) it saw."""

    event_id: uuid.UUID
    organizer_id: uuid.UUID
    title: str
    venue: str
    starts_at: datetime
    currency: str
    price: Decimal
    capacity: int
    status: str
    version: int
    updated_at: datetime


@dataclass(frozen=True)
class BookingRecord:
    booking_id: uuid.UUID
    event_id: uuid.UUID
    user_id: uuid.UUID
    quantity: int
    amount: Decimal
    currency: str
    status: BookingStatus | None = None
    created_at: datetime | None = None
    confirmed_at: datetime | None = None
    cancelled_at: datetime | None = None
    expired_at: datetime | None = None
    cancel_reason: str | None = None
    # [{ticket_type_id, name, quantity, unit_price, amount}] (JSON values); None: not told
    lines: list[dict[str, Any]] | None = None
    discount: Decimal = Decimal("0.00")  # taken off by a voucher (``amount`` is after it)

    def record(
        self, transition: BookingTransition, at: datetime, **details: object
    ) -> BookingRecord:
        """This booking after ``transition`` happened at ``at`` (idempotent, order-independent)."""
        column = f"{transition}_at"
        updated = replace(self, **{column: _earliest(getattr(self, column), at)}, **details)
        return replace(updated, status=updated._latest_status())

    def _latest_status(self) -> BookingStatus | None:
        stamped = [
            (at, rank, status)
            for transition, (rank, status) in BOOKING_STATUS.items()
            if (at := getattr(self, f"{transition}_at")) is not None
        ]
        return max(stamped)[2] if stamped else None


@dataclass(frozen=True)
class PaymentRecord:
    payment_id: uuid.UUID
    booking_id: uuid.UUID
    user_id: uuid.UUID
    event_id: uuid.UUID | None
    amount: Decimal
    currency: str
    status: PaymentStatus | None = None
    succeeded_at: datetime | None = None
    failed_at: datetime | None = None
    refunded_at: datetime | None = None
    refunded_amount: Decimal | None = None
    failure_reason: str | None = None

    def record(
        self,
        transition: PaymentTransition,
        at: datetime,
        *,
        event_id: uuid.UUID | None = None,
        **details: object,
    ) -> PaymentRecord:
        """This payment after ``transition`` happened at ``at`` (idempotent, order-independent).

        ``details`` (refund amount, failure reason) are taken from the first fact of a kind.
        """
        column = f"{transition}_at"
        first_time = getattr(self, column) is None
        updated = replace(
            self,
            **{column: _earliest(getattr(self, column), at)},
            event_id=self.event_id or event_id,
            **(details if first_time else {}),
        )
        stamped = [
            (stamp, rank, status)
            for t, (rank, status) in PAYMENT_STATUS.items()
            if (stamp := getattr(updated, f"{t}_at")) is not None
        ]
        return replace(updated, status=max(stamped)[2])


def whole_refund_key(payment_id: uuid.UUID) -> uuid.UUID:
    """The key of a refund told without a ``refund_id`` ("the whole remaining amount, once")."""
    return uuid.uuid5(payment_id, "whole-refund")


@dataclass(frozen=True)
class RefundRecord:
    """One refund of a payment (a payment may be refunded in several parts)."""

    refund_key: uuid.UUID
    payment_id: uuid.UUID
    booking_id: uuid.UUID
    event_id: uuid.UUID | None
    amount: Decimal
    currency: str
    refunded_at: datetime


# --- reports --------------------------------------------------------------------------------

# Kinds of activity rows the repository returns (one per transition, plus two derived ones).
ActivityKind = Literal[
    "booking_created",
    "booking_confirmed",
    "booking_cancelled",
    "booking_expired",
    "sale_cancelled",  # a confirmed booking was cancelled afterwards: its seats went back
    "hold_paid",  # a booking created in the window that was (at any time) confirmed
    "discount_given",  # a voucher's discount, counted when its booking is confirmed
    "payment_succeeded",
    "payment_failed",
    "payment_refunded",
]


@dataclass(frozen=True)
class Window:
    """``start <= occurred_at < end``; either side open when None."""

    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        for name, value in (("from", self.start), ("to", self.end)):
            if value is None:
                continue
            try:  # at the calendar's edges (year 1 east of UTC, 9999 west) UTC does not exist
                object.__setattr__(
                    self, "start" if name == "from" else "end", value.astimezone(UTC)
                )
                if name == "to":  # the daily series reads the last day as `to` minus 1 µs
                    (value - timedelta(microseconds=1)).astimezone(UTC)
            except OverflowError:
                raise InvalidWindow(f"`{name}` is out of range.", field=name) from None
        if self.start is not None and self.end is not None and self.start > self.end:
            raise InvalidWindow("`from` must not be after `to`.", field="from")


@dataclass(frozen=True)
class Activity:
    """``count`` transitions of ``kind`` (with their seats and money) for one report key."""

    kind: ActivityKind
    count: int
    quantity: int = 0
    currency: str | None = None
    amount: Decimal | None = None


# The counts of a report row as reports show them, in their order (``holds_paid`` is not shown:
# it is only the conversion's numerator).
REPORTED_COUNTS = (
    "bookings_created",
    "bookings_confirmed",
    "bookings_cancelled",
    "bookings_expired",
    "tickets_sold",
    "tickets_cancelled",
    "payments_succeeded",
    "payments_failed",
    "payments_refunded",
)


@dataclass
class Figures:
    """The figures of one report row (an event, a day, or the totals)."""

    bookings_created: int = 0
    bookings_confirmed: int = 0
    bookings_cancelled: int = 0
    bookings_expired: int = 0
    tickets_sold: int = 0
    tickets_cancelled: int = 0
    holds_paid: int = 0
    payments_succeeded: int = 0
    payments_failed: int = 0
    payments_refunded: int = 0
    revenue: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    refunds: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    discounts: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    def add(self, a: Activity) -> None:
        match a.kind:
            case "booking_created":
                self.bookings_created += a.count
            case "booking_confirmed":
                self.bookings_confirmed += a.count
                self.tickets_sold += a.quantity
            case "booking_cancelled":
                self.bookings_cancelled += a.count
            case "booking_expired":
                self.bookings_expired += a.count
            case "sale_cancelled":
                self.tickets_cancelled += a.quantity
            case "hold_paid":
                self.holds_paid += a.count
            case "payment_succeeded":
                self.payments_succeeded += a.count
                self._money(self.revenue, a)
            case "payment_failed":
                self.payments_failed += a.count
            case "payment_refunded":
                self.payments_refunded += a.count
                self._money(self.refunds, a)
            case "discount_given":
                self._money(self.discounts, a)

    @staticmethod
    def _money(into: dict[str, Decimal], a: Activity) -> None:
        if a.currency is not None:
            into[a.currency] += a.amount or Decimal(0)

    def merge(self, other: Figures) -> None:
        for name in (*REPORTED_COUNTS, "holds_paid"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for cur, amount in other.revenue.items():
            self.revenue[cur] += amount
        for cur, amount in other.refunds.items():
            self.refunds[cur] += amount
        for cur, amount in other.discounts.items():
            self.discounts[cur] += amount

    def show_currency(self, currency: str | None) -> None:
        """Report ``currency`` even at zero (an event's own currency always shows)."""
        if currency:
            self.revenue[currency] += 0
            self.refunds[currency] += 0

    @property
    def currencies(self) -> list[str]:
        return sorted(set(self.revenue) | set(self.refunds) | set(self.discounts))

    @property
    def net_revenue(self) -> dict[str, Decimal]:
        return {
            c: self.revenue.get(c, Decimal(0)) - self.refunds.get(c, Decimal(0))
            for c in self.currencies
        }

    @property
    def conversion(self) -> Decimal | None:
        """Share of the holds placed in the window that got paid; None without holds."""
        if not self.bookings_created:
            return None
        ratio = Decimal(self.holds_paid) / Decimal(self.bookings_created)
        return ratio.quantize(CONVERSION_PLACES, rounding=ROUND_HALF_EVEN)


@dataclass
class TypeFigures:
    """Seats and money of one ticket type of an event, counted when bookings are confirmed
    (and, for ``tickets_cancelled``, when a confirmed booking is cancelled)."""

    ticket_type_id: uuid.UUID
    name: str
    tickets_sold: int = 0
    tickets_cancelled: int = 0
    # the lines' amounts (quantity x the price frozen at the hold), before any booking discount
    revenue: Decimal = Decimal(0)


@dataclass(frozen=True)
class Sale:
    """A booking confirmed (``cancelled`` False) or a confirmed booking cancelled, in a window."""

    event_id: uuid.UUID
    cancelled: bool
    quantity: int
    amount: Decimal
    lines: list[dict[str, Any]] | None


def ticket_type_figures(sales: list[Sale]) -> dict[uuid.UUID, list[TypeFigures]]:
    """Per event, per ticket type (in order of first appearance). A booking from before ticket
    types (no lines) is one line of its event's implied type ("General admission")."""
    out: dict[uuid.UUID, dict[uuid.UUID, TypeFigures]] = defaultdict(dict)
    for sale in sales:
        lines = sale.lines or [
            {
                "ticket_type_id": str(implied_ticket_type_id(sale.event_id)),
                "name": "General admission",
                "quantity": sale.quantity,
                "amount": str(sale.amount),
            }
        ]
        for line in lines:
            type_id = uuid.UUID(str(line["ticket_type_id"]))
            row = out[sale.event_id].setdefault(type_id, TypeFigures(type_id, line["name"]))
            if sale.cancelled:
                row.tickets_cancelled += int(line["quantity"])
            else:
                row.tickets_sold += int(line["quantity"])
                row.revenue += Decimal(str(line["amount"]))
    return {event_id: list(types.values()) for event_id, types in out.items()}


@dataclass
class EventReport:
    event_id: uuid.UUID
    event: EventRecord | None  # None when only bookings/payments of it were seen so far
    figures: Figures
    ticket_types: list[TypeFigures] = field(default_factory=list)


@dataclass
class Report:
    generated_at: datetime
    window: Window
    event_id: uuid.UUID | None
    totals: Figures
    events: list[EventReport]


@dataclass
class DayReport:
    date: object  # datetime.date
    figures: Figures


@dataclass
class DailyReport:
    generated_at: datetime
    window: Window
    event_id: uuid.UUID | None
    days: list[DayReport]


def event_reports(
    events: list[EventRecord], activity: dict[uuid.UUID, list[Activity]]
) -> list[EventReport]:
    """One row per known event in scope, then any event only seen through its bookings."""
    rows = []
    for event in events:
        figures = Figures()
        for a in activity.get(event.event_id, []):
            figures.add(a)
        figures.show_currency(event.currency)
        rows.append(EventReport(event.event_id, event, figures))
    known = {e.event_id for e in events}
    for event_id in sorted(set(activity) - known, key=str):
        figures = Figures()
        for a in activity[event_id]:
            figures.add(a)
        rows.append(EventReport(event_id, None, figures))
    return rows


def totals_of(rows: list[Figures]) -> Figures:
    totals = Figures()
    for figures in rows:
        totals.merge(figures)
    return totals
