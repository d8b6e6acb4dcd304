"""Read-model access.

A fact is written once, as one upsert with the consumer's inbox mark (``*_statement`` below,
see ``kit.inbox``): one statement on PostgreSQL, the upsert after the mark in a unit of work on
SQLite (the embedded mode), so its SQL is what both run. It folds a fact as the domain does
(``BookingRecord.record``, ``PaymentRecord.record``). :class:`AnalyticsRepository` reads.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import fields
from datetime import date
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from apps.analytics.adapters.tables import bookings, events, payments, refunds
from apps.analytics.domain import (
    BOOKING_STATUS,
    PAYMENT_STATUS,
    Activity,
    BookingRecord,
    EventRecord,
    PaymentRecord,
    RefundRecord,
    Sale,
    Window,
)
from kit.inbox import Statement, insert_from_mark, once_per_message

GroupBy = Literal["event", "day"]


def _record(cls: type[Any], row: sa.Row) -> Any:
    return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})


# --- one write per fact, with the inbox mark ----------------------------------------------------
#
# Each is ``INSERT ... SELECT <the record as if first seen> FROM inbox_mark ON CONFLICT DO
# UPDATE``: the record a first fact makes is computed by the domain, and a later fact is merged
# into the stored row by SQL that mirrors the domain: each transition keeps its earliest
# timestamp, the status is the latest transition (rank breaks ties), details come with the first
# fact of their kind. The row lock ON CONFLICT takes serialises facts of one booking (payment)
# on PostgreSQL; SQLite has one writer at a time. The SQL is what PostgreSQL and SQLite both
# run (no LEAST, no column list on a derived table); SQLite compares the stored UTC times as
# text, which sorts as time (one fixed format).


def _earliest(column: str) -> str:
    """The earlier of the stored and the new time, a NULL skipped (as domain._earliest)."""
    return (
        f"CASE WHEN t.{column} IS NULL OR EXCLUDED.{column} < t.{column} "
        f"THEN EXCLUDED.{column} ELSE t.{column} END"
    )


def _latest_status(ranks: dict[str, tuple[int, str]]) -> str:
    stamps = " UNION ALL ".join(
        f"SELECT {_earliest(f'{transition}_at')} AS at, {rank} AS rank, '{status}' AS status"
        for transition, (rank, status) in ranks.items()
    )
    return (
        f"(SELECT s.status FROM ({stamps}) AS s "
        "WHERE s.at IS NOT NULL ORDER BY s.at DESC, s.rank DESC LIMIT 1)"
    )


def _first_of_kind(detail: str, transition: str) -> str:
    """A detail taken from the first fact of its kind (the stored one wins after that)."""
    return (
        f"CASE WHEN t.{transition}_at IS NULL THEN COALESCE(EXCLUDED.{detail}, t.{detail}) "
        f"ELSE t.{detail} END"
    )


def _upsert(key: str, *, where: str = "", **exprs: str) -> str:
    assignments = ", ".join(f"{column} = {expr}" for column, expr in exprs.items())
    return f"ON CONFLICT ({key}) DO UPDATE SET {assignments}" + (f" WHERE {where}" if where else "")


RECORD_EVENT = once_per_message(
    insert_from_mark(
        events,
        _upsert(
            "event_id",
            **{c.name: f"EXCLUDED.{c.name}" for c in events.c if c.name != "event_id"},
            where="t.version < EXCLUDED.version",  # the highest version wins
        ),
    )
)
RECORD_BOOKING = once_per_message(
    insert_from_mark(
        bookings,
        _upsert(
            "booking_id",
            **{f"{t}_at": _earliest(f"{t}_at") for t in BOOKING_STATUS},
            cancel_reason="COALESCE(EXCLUDED.cancel_reason, t.cancel_reason)",  # set by a cancellation
            lines="COALESCE(t.lines, EXCLUDED.lines)",  # frozen at the hold: the first told wins
            # frozen at the hold too: facts from before vouchers say 0
            discount="CASE WHEN t.discount = 0 THEN EXCLUDED.discount ELSE t.discount END",
            status=_latest_status(BOOKING_STATUS),
        ),
    )
)
PAYMENT_WRITE = insert_from_mark(
    payments,
    _upsert(
        "payment_id",
        **{f"{t}_at": _earliest(f"{t}_at") for t in PAYMENT_STATUS},
        event_id="COALESCE(t.event_id, EXCLUDED.event_id)",  # older payment facts lack it
        refunded_amount=_first_of_kind("refunded_amount", "refunded"),
        failure_reason=_first_of_kind("failure_reason", "failed"),
        status=_latest_status(PAYMENT_STATUS),
    ),
)
RECORD_PAYMENT = once_per_message(PAYMENT_WRITE)
# A refund: the payment's transition (its first refund makes it `refunded`) and the refund's own
# row; the same refund told again (another message, the same refund id) adds nothing.
RECORD_REFUND = once_per_message(
    PAYMENT_WRITE,
    insert_from_mark(refunds, "ON CONFLICT (refund_key) DO NOTHING", prefix="r_"),
)

_EVENT_FIELDS = [f.name for f in fields(EventRecord)]
_BOOKING_FIELDS = [f.name for f in fields(BookingRecord)]
_PAYMENT_FIELDS = [f.name for f in fields(PaymentRecord)]


def event_snapshot_statement(event: EventRecord) -> Statement:
    """Store the snapshot unless a newer version of the event is already stored."""
    return Statement(RECORD_EVENT, {n: getattr(event, n) for n in _EVENT_FIELDS})


def booking_statement(first_seen: BookingRecord) -> Statement:
    """Insert the booking as ``first_seen`` (after its fact), or merge that fact into it."""
    return Statement(RECORD_BOOKING, {n: getattr(first_seen, n) for n in _BOOKING_FIELDS})


def payment_statement(first_seen: PaymentRecord) -> Statement:
    """Insert the payment as ``first_seen`` (after its fact), or merge that fact into it."""
    return Statement(RECORD_PAYMENT, {n: getattr(first_seen, n) for n in _PAYMENT_FIELDS})


_REFUND_FIELDS = [f.name for f in fields(RefundRecord)]


def refund_statement(first_seen: PaymentRecord, refund: RefundRecord) -> Statement:
    """Merge the refund into its payment and keep the refund's own row (once per refund)."""
    params = {n: getattr(first_seen, n) for n in _PAYMENT_FIELDS}
    params.update({f"r_{n}": getattr(refund, n) for n in _REFUND_FIELDS})
    return Statement(RECORD_REFUND, params)


class AnalyticsRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    # --- reads (reports) ----------------------------------------------------------------------

    async def event(self, event_id: uuid.UUID) -> EventRecord | None:
        row = (
            await self.conn.execute(sa.select(events).where(events.c.event_id == event_id))
        ).first()
        return _record(EventRecord, row) if row else None

    async def has_activity(self, event_id: uuid.UUID) -> bool:
        """Whether any booking or payment of the event was seen (before its own facts, maybe)."""
        stmt = sa.select(
            sa.exists().where(bookings.c.event_id == event_id)
            | sa.exists().where(payments.c.event_id == event_id)
        )
        return bool((await self.conn.execute(stmt)).scalar())

    async def events_in_scope(
        self, *, organizer_id: uuid.UUID | None, event_id: uuid.UUID | None
    ) -> list[EventRecord]:
        stmt = sa.select(events).order_by(events.c.starts_at, events.c.event_id)
        if organizer_id is not None:
            stmt = stmt.where(events.c.organizer_id == organizer_id)
        if event_id is not None:
            stmt = stmt.where(events.c.event_id == event_id)
        return [_record(EventRecord, r) for r in (await self.conn.execute(stmt)).all()]

    async def activity(
        self,
        *,
        by: GroupBy,
        window: Window,
        organizer_id: uuid.UUID | None,
        event_id: uuid.UUID | None,
    ) -> dict[Any, list[Activity]]:
        """Transitions in ``window``, counted per event (``by="event"``) or per UTC day."""
        facts = _activity().subquery("activity")
        key = (
            facts.c.event_id
            if by == "event"
            else sa.cast(sa.func.timezone("UTC", facts.c.at), sa.Date)
        )
        if by == "day" and self.conn.dialect.name == "sqlite":  # embedded mode: times are UTC
            key = sa.func.date(facts.c.at, type_=sa.Date)
        stmt = sa.select(
            key.label("key"),
            facts.c.kind,
            facts.c.currency,
            sa.func.count().label("count"),
            sa.func.coalesce(sa.func.sum(facts.c.quantity), 0).label("quantity"),
            sa.func.sum(facts.c.amount).label("amount"),
        ).group_by(key, facts.c.kind, facts.c.currency)
        if window.start is not None:
            stmt = stmt.where(facts.c.at >= window.start)
        if window.end is not None:
            stmt = stmt.where(facts.c.at < window.end)
        if event_id is not None:
            stmt = stmt.where(facts.c.event_id == event_id)
        if organizer_id is not None:
            own = sa.select(events.c.event_id).where(events.c.organizer_id == organizer_id)
            stmt = stmt.where(facts.c.event_id.in_(own))
        out: dict[uuid.UUID | date, list[Activity]] = defaultdict(list)
        for row in (await self.conn.execute(stmt)).all():
            out[row.key].append(
                Activity(row.kind, row.count, int(row.quantity), row.currency, row.amount)
            )
        return out

    async def sales(
        self, *, window: Window, organizer_id: uuid.UUID | None, event_id: uuid.UUID | None
    ) -> list[Sale]:
        """Bookings confirmed in ``window``, and confirmed ones cancelled in it, with lines."""
        b = bookings
        out: list[Sale] = []
        for cancelled, at in ((False, b.c.confirmed_at), (True, b.c.cancelled_at)):
            stmt = sa.select(b.c.event_id, b.c.quantity, b.c.amount, b.c.lines).where(
                at.is_not(None)
            )
            if cancelled:
                stmt = stmt.where(
                    b.c.confirmed_at.is_not(None), b.c.confirmed_at <= b.c.cancelled_at
                )
            if window.start is not None:
                stmt = stmt.where(at >= window.start)
            if window.end is not None:
                stmt = stmt.where(at < window.end)
            if event_id is not None:
                stmt = stmt.where(b.c.event_id == event_id)
            if organizer_id is not None:
                own = sa.select(events.c.event_id).where(events.c.organizer_id == organizer_id)
                stmt = stmt.where(b.c.event_id.in_(own))
            out += [
                Sale(r.event_id, cancelled, r.quantity, r.amount, r.lines)
                for r in (await self.conn.execute(stmt)).all()
            ]
        return out


def _activity() -> sa.CompoundSelect:
    """Every transition as a row ``(event_id, kind, at, quantity, currency, amount)``."""
    b, p = bookings, payments
    no_money = (
        sa.null().cast(sa.String(3)).label("currency"),
        sa.null().cast(b.c.amount.type).label("amount"),
    )

    def booking_rows(kind: str, at: sa.ColumnElement[Any], *where: Any) -> sa.Select[Any]:
        return sa.select(
            b.c.event_id.label("event_id"),
            sa.literal(kind).label("kind"),
            at.label("at"),
            b.c.quantity.label("quantity"),
            *no_money,
        ).where(at.is_not(None), *where)

    paid_for = sa.func.coalesce(p.c.event_id, b.c.event_id)  # older payment facts lack event_id

    def payment_rows(kind: str, at: sa.ColumnElement[Any], amount: Any) -> sa.Select[Any]:
        return (
            sa.select(
                paid_for.label("event_id"),
                sa.literal(kind).label("kind"),
                at.label("at"),
                sa.literal(0).label("quantity"),
                p.c.currency.label("currency"),
                amount.label("amount"),
            )
            .select_from(p.outerjoin(b, b.c.booking_id == p.c.booking_id))
            .where(at.is_not(None), paid_for.is_not(None))
        )

    def refund_rows() -> sa.Select[Any]:
        # one row per refund (a payment refunded in parts has several), its own amount
        r = refunds
        refunded_for = sa.func.coalesce(r.c.event_id, b.c.event_id)
        return (
            sa.select(
                refunded_for.label("event_id"),
                sa.literal("payment_refunded").label("kind"),
                r.c.refunded_at.label("at"),
                sa.literal(0).label("quantity"),
                r.c.currency.label("currency"),
                r.c.amount.label("amount"),
            )
            .select_from(r.outerjoin(b, b.c.booking_id == r.c.booking_id))
            .where(refunded_for.is_not(None))
        )

    return sa.union_all(
        booking_rows("booking_created", b.c.created_at),
        booking_rows("booking_confirmed", b.c.confirmed_at),
        booking_rows("booking_cancelled", b.c.cancelled_at),
        booking_rows("booking_expired", b.c.expired_at),
        booking_rows(
            "sale_cancelled",
            b.c.cancelled_at,
            b.c.confirmed_at.is_not(None),
            b.c.confirmed_at <= b.c.cancelled_at,
        ),
        booking_rows("hold_paid", b.c.created_at, b.c.confirmed_at.is_not(None)),
        sa.select(
            b.c.event_id.label("event_id"),
            sa.literal("discount_given").label("kind"),
            b.c.confirmed_at.label("at"),
            sa.literal(0).label("quantity"),
            b.c.currency.label("currency"),
            b.c.discount.label("amount"),
        ).where(b.c.confirmed_at.is_not(None), b.c.discount > 0),
        payment_rows("payment_succeeded", p.c.succeeded_at, p.c.amount),
        payment_rows("payment_failed", p.c.failed_at, sa.null().cast(p.c.amount.type)),
        refund_rows(),
    )
