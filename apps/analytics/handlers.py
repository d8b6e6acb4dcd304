"""Use cases of the analytics service: record one fact, make a report."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from apps.analytics import domain
from apps.analytics.adapters import repository
from apps.analytics.adapters.repository import AnalyticsRepository
from apps.analytics.domain import (
    Activity,
    BookingRecord,
    DailyReport,
    DayReport,
    EventRecord,
    Figures,
    InvalidWindow,
    PaymentRecord,
    RefundRecord,
    Report,
    ReportNotFound,
    Window,
)
from kit.db import Database
from kit.inbox import OneStatementHandler, Statement, once_per_message
from kit.broker import PermanentFailure
from kit.security import Principal
from contracts.envelope import Envelope
from contracts.messages import (
    BookingCancelled,
    BookingConfirmed,
    BookingCreated,
    BookingDetails,
    BookingExpired,
    EventDetails,
    PaymentConfirmed,
    PaymentDetails,
    PaymentFailed,
    PaymentRefunded,
    TicketCheckedIn,
)

MAX_DAYS = 366
DEFAULT_DAYS = 30


def _now() -> datetime:
    return datetime.now(UTC)


# --- recording facts ------------------------------------------------------------------------
#
# A fact becomes a record of the read model: the event's snapshot, or the booking's (payment's)
# record after one more transition, written once (fact_statement) as one upsert with the inbox
# mark: one statement on PostgreSQL, the upsert after the mark on SQLite. The domain computes
# the record a first fact makes; the upsert merges a later one with the domain's rules.


def _not_counted(fact: Envelope) -> PermanentFailure:
    return PermanentFailure(f"analytics does not count {type(fact).__name__}")


def _event_record(fact: EventDetails) -> EventRecord:
    return EventRecord(
        event_id=fact.event_id,
        organizer_id=fact.organizer_id,
        title=fact.title,
        venue=fact.venue,
        starts_at=fact.starts_at,
        currency=fact.currency,
        price=fact.price,
        capacity=fact.capacity,
        status=fact.status,
        version=fact.version,
        updated_at=fact.occurred_at,
    )


_BOOKING_TRANSITIONS: dict[type[BookingDetails], domain.BookingTransition] = {
    BookingCreated: "created",
    BookingConfirmed: "confirmed",
    BookingCancelled: "cancelled",
    BookingExpired: "expired",
}


def _booking_first_seen(fact: BookingDetails) -> BookingRecord:
    return BookingRecord(
        booking_id=fact.booking_id,
        event_id=fact.event_id,
        user_id=fact.user_id,
        quantity=fact.quantity,
        amount=fact.amount,
        currency=fact.currency,
        lines=[line.model_dump(mode="json") for line in fact.lines] or None,
        discount=fact.discount,
    )


def _with_booking_fact(booking: BookingRecord, fact: BookingDetails) -> BookingRecord:
    details = {"cancel_reason": fact.reason} if isinstance(fact, BookingCancelled) else {}
    return booking.record(_BOOKING_TRANSITIONS[type(fact)], fact.occurred_at, **details)


def _payment_first_seen(fact: PaymentDetails) -> PaymentRecord:
    return PaymentRecord(
        payment_id=fact.payment_id,
        booking_id=fact.booking_id,
        user_id=fact.user_id,
        event_id=fact.event_id,
        amount=fact.amount,
        currency=fact.currency,
    )


def _with_payment_fact(payment: PaymentRecord, fact: PaymentDetails) -> PaymentRecord:
    match fact:
        case PaymentConfirmed():
            return payment.record("succeeded", fact.occurred_at, event_id=fact.event_id)
        case PaymentFailed():
            return payment.record(
                "failed",
                fact.occurred_at,
                event_id=fact.event_id,
                failure_reason=fact.failure_reason,
            )
        case PaymentRefunded():
            return payment.record(
                "refunded", fact.occurred_at, event_id=fact.event_id, refunded_amount=fact.amount
            )
    raise _not_counted(fact)


def _refund(fact: PaymentRefunded) -> RefundRecord:
    # `amount` is this refund's part; the same refund told twice is one row (its key)
    return RefundRecord(
        refund_key=fact.refund_id or domain.whole_refund_key(fact.payment_id),
        payment_id=fact.payment_id,
        booking_id=fact.booking_id,
        event_id=fact.event_id,
        amount=fact.amount,
        currency=fact.currency,
        refunded_at=fact.occurred_at,
    )


# Check-ins are on the analytics channel for the reports to come; nothing counts them yet, so
# they are only marked as seen.
_MARK_ONLY = once_per_message()


async def fact_statement(fact: Envelope, _conn: AsyncConnection) -> Statement:
    """The fact folded into the read model, with the inbox mark."""
    match fact:
        case TicketCheckedIn():
            return Statement(_MARK_ONLY, {})
        case EventDetails():
            return repository.event_snapshot_statement(_event_record(fact))
        case BookingDetails():
            return repository.booking_statement(_with_booking_fact(_booking_first_seen(fact), fact))
        case PaymentRefunded():
            return repository.refund_statement(
                _with_payment_fact(_payment_first_seen(fact), fact), _refund(fact)
            )
        case PaymentDetails():
            return repository.payment_statement(_with_payment_fact(_payment_first_seen(fact), fact))
    raise _not_counted(fact)


# Fold one fact of the `analytics` channel into the read model (a consume_once handler).
record_fact = OneStatementHandler(fact_statement)


# --- reports --------------------------------------------------------------------------------


@asynccontextmanager
async def _snapshot(db: Database) -> AsyncIterator[AnalyticsRepository]:
    """A repository reading one consistent snapshot (all queries of a report agree)."""
    async with db.engine.connect() as conn:
        if db.is_postgres:  # a SQLite transaction (embedded mode) is a snapshot already
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            yield AnalyticsRepository(conn)


def _scope(viewer: Principal) -> uuid.UUID | None:
    """Organizers see their own events; admins everything (None = no organizer filter)."""
    return None if viewer.is_admin else viewer.user_id


async def _check_visible(
    repo: AnalyticsRepository, event_id: uuid.UUID, organizer_id: uuid.UUID | None
) -> None:
    event = await repo.event(event_id)
    if organizer_id is None:
        if event is None and not await repo.has_activity(event_id):
            raise ReportNotFound("No such event.")
    elif event is None or event.organizer_id != organizer_id:
        raise ReportNotFound("No such event.")


async def _in_scope(
    repo: AnalyticsRepository,
    viewer: Principal,
    window: Window,
    event_id: uuid.UUID | None,
    *,
    by: repository.GroupBy,
) -> tuple[list[EventRecord], dict[Any, list[Activity]]]:
    """The events the viewer may see (``event_id``: only it, ReportNotFound unless they may see
    it) and their activity inside ``window``, grouped ``by`` event or day."""
    organizer_id = _scope(viewer)
    if event_id is not None:
        await _check_visible(repo, event_id, organizer_id)
    known = await repo.events_in_scope(organizer_id=organizer_id, event_id=event_id)
    activity = await repo.activity(
        by=by, window=window, organizer_id=organizer_id, event_id=event_id
    )
    return known, activity


async def make_report(
    db: Database, *, viewer: Principal, window: Window, event_id: uuid.UUID | None = None
) -> Report:
    """Totals and one row per event in the viewer's scope, for facts inside ``window``."""
    async with _snapshot(db) as repo:
        known, activity = await _in_scope(repo, viewer, window, event_id, by="event")
        sales = await repo.sales(window=window, organizer_id=_scope(viewer), event_id=event_id)
    rows = domain.event_reports(known, activity)
    per_type = domain.ticket_type_figures(sales)
    for row in rows:
        row.ticket_types = per_type.get(row.event_id, [])
    totals = domain.totals_of([r.figures for r in rows])
    return Report(_now(), window, event_id, totals, rows)


def daily_window(window: Window, now: datetime) -> Window:
    """The window a daily series covers: ``to`` defaults to now, ``from`` to 30 days earlier
    (midnight UTC); at most a year of days."""
    end = window.end or now
    try:
        start = window.start or datetime.combine(
            (end - timedelta(days=DEFAULT_DAYS - 1)).astimezone(UTC).date(), time(), UTC
        )
    except OverflowError:  # `to` in the first days of year 1: no 30 days before it
        raise InvalidWindow("`to` is too early for a daily series.", field="to") from None
    if start > end:
        raise InvalidWindow("`from` must not be after `to`.", field="from")
    if end - start > timedelta(days=MAX_DAYS):
        raise InvalidWindow(f"A daily series covers at most {MAX_DAYS} days.", field="from")
    return Window(start, end)


async def make_daily_report(
    db: Database, *, viewer: Principal, window: Window, event_id: uuid.UUID | None = None
) -> DailyReport:
    """One row per UTC day of the window (days without activity included, at zero)."""
    now = _now()
    window = daily_window(window, now)
    async with _snapshot(db) as repo:
        known, activity = await _in_scope(repo, viewer, window, event_id, by="day")
    assert window.start is not None and window.end is not None
    first = window.start.astimezone(UTC).date()
    last = (window.end - timedelta(microseconds=1)).astimezone(UTC).date()
    currencies = {e.currency for e in known}
    days = []
    for n in range((last - first).days + 1):
        day = first + timedelta(days=n)
        figures = Figures()
        for a in activity.get(day, []):
            figures.add(a)
        for currency in currencies:
            figures.show_currency(currency)
        days.append(DayReport(day, figures))
    return DailyReport(now, window, event_id, days)
