"""Booking database access. Takes the unit of work's connection; never commits.

Lock order, the same in every transaction so they cannot deadlock each other: a booking row (a
transition locks its booking first), then event inventory rows, then ticket-type rows, then
user-hold rows, each sorted by id. A reservation inserts a *new* booking row (nobody can be
waiting on it) after taking the event row, its lines' type rows and the user's row, all in one
statement (``booking_reserve``). Seat changes that never take seats (confirm, expire, cancel)
are applied at COMMIT in that order by a deferred trigger (migration 0003, type rows since
0004), so the events' hot rows are locked only while PostgreSQL commits. Cancelling a whole
event takes its inventory row first (so no new hold can slip in while its bookings are
cancelled); a deadlock with a payment for one of its bookings at that very instant is
possible, PostgreSQL breaks it and the message is retried."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from apps.booking.adapters.tables import (
    booking_attendees,
    booking_lines,
    bookings,
    inventory,
    type_inventory,
    vouchers,
)
from apps.booking.adapters.tickets import Ticket
from apps.booking.domain import Attendee, Booking, BookingStatus, Line, Transition, Voucher
from kit import inbox, outbox
from kit.dialects import insert_for
from kit.listing import where_given
from kit.pagination import newest_first

_COLUMNS = [f.name for f in fields(Booking) if f.name not in ("lines", "attendees")]


def _to_booking(row: sa.Row) -> Booking:
    return Booking(**{k: getattr(row, k) for k in _COLUMNS})


# A voucher's columns stored as they are (``ticket_type_ids`` is a JSON list; ``used`` is
# counted here, never taken from a snapshot).
_VOUCHER_TERMS = [f.name for f in fields(Voucher) if f.name not in ("ticket_type_ids", "used")]


def _to_voucher(row: sa.Row) -> Voucher:
    return Voucher(
        **{k: getattr(row, k) for k in _VOUCHER_TERMS},
        ticket_type_ids=frozenset(uuid.UUID(t) for t in row.ticket_type_ids),
        used=row.used,
    )


def _voucher_values(v: Voucher) -> dict[str, Any]:
    """A voucher's snapshot columns (all but ``used``)."""
    return {
        **{k: getattr(v, k) for k in _VOUCHER_TERMS},
        "ticket_type_ids": sorted(str(t) for t in v.ticket_type_ids),
        "updated_at": datetime.now(UTC),
    }


_LINES = (
    sa.select(booking_lines)
    .where(booking_lines.c.booking_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(booking_lines.c.booking_id, booking_lines.c.line_no)
)
_ATTENDEES = (
    sa.select(booking_attendees)
    .where(booking_attendees.c.booking_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(booking_attendees.c.booking_id, booking_attendees.c.seat_no)
)


async def with_lines(conn: AsyncConnection, rows: Sequence[sa.Row]) -> list[Booking]:
    """The bookings of ``rows`` with their lines and attendees (two reads for all of them)."""
    if not rows:
        return []
    ids = [r.id for r in rows]
    lines: dict[uuid.UUID, list[Line]] = defaultdict(list)
    for r in await conn.execute(_LINES, {"ids": ids}):
        lines[r.booking_id].append(Line(r.ticket_type_id, r.name, r.quantity, r.unit_price))
    people: dict[uuid.UUID, list[Attendee]] = defaultdict(list)
    for r in await conn.execute(_ATTENDEES, {"ids": ids}):
        people[r.booking_id].append(Attendee(r.ticket_type_id, r.name, r.email))
    return [
        replace(_to_booking(r), lines=tuple(lines[r.id]), attendees=tuple(people[r.id]))
        for r in rows
    ]


@dataclass(frozen=True)
class Inventory:
    event_id: uuid.UUID
    organizer_id: uuid.UUID
    capacity: int
    held: int
    sold: int
    price: Decimal
    currency: str
    status: str
    version: int
    starts_at: datetime | None = None

    @property
    def available(self) -> int:
        return self.capacity - self.held - self.sold


@dataclass(frozen=True)
class TypeInventory:
    """One ticket type of an event as booking sells it (``type_inventory``)."""

    event_id: uuid.UUID
    ticket_type_id: uuid.UUID
    name: str
    price: Decimal
    capacity: int | None
    held: int
    sold: int
    sales_start: datetime | None
    sales_end: datetime | None
    max_per_order: int | None
    position: int
    active: bool

    @property
    def available(self) -> int | None:
        """Seats left of the type's own capacity; None: only the event's quota limits it."""
        return None if self.capacity is None else self.capacity - self.held - self.sold


@dataclass(frozen=True)
class TicketTypeSnapshot:
    """A ticket type as an event snapshot lists it."""

    ticket_type_id: uuid.UUID
    name: str
    price: Decimal
    capacity: int | None = None
    sales_start: datetime | None = None
    sales_end: datetime | None = None
    max_per_order: int | None = None


@dataclass(frozen=True)
class EventSnapshot:
    """An event as its latest message describes it (what ``apply_snapshot`` keeps)."""

    event_id: uuid.UUID
    organizer_id: uuid.UUID
    capacity: int
    price: Decimal
    currency: str
    status: str
    version: int
    starts_at: datetime | None = None
    ticket_types: Sequence[TicketTypeSnapshot] = ()

    def columns(self) -> dict[str, Any]:
        """The event row's columns as the snapshot gives them (its types are rows of their own)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "ticket_types"}


ReserveResult = Literal[
    "reserved",
    "event_unknown",
    "not_on_sale",
    "sold_out",
    "price_changed",
    "hold_limit",
    "sales_ended",
    "sales_not_started",
    "type_unknown",
    "too_many",
    "voucher_unknown",
    "voucher_changed",
    "voucher_exhausted",
]


@dataclass(frozen=True)
class ReserveOutcome:
    """The reservation's answer: ``reserved``, or why not (with what the event looked like)."""

    outcome: ReserveResult
    event_status: str | None  # None: booking does not know the event
    available: int | None
    ticket_type_id: uuid.UUID | None = None  # the line's type that was refused, if one was
    type_available: int | None = None
    lapsed: bool = False  # sold out, but the event has lapsed holds not yet expired


def lines_json(booking: Booking) -> list[dict[str, str | int]]:
    """The booking's lines as ``booking_reserve`` takes them."""
    return [
        {
            "ticket_type_id": str(ln.ticket_type_id),
            "name": ln.name,
            "quantity": ln.quantity,
            "unit_price": str(ln.unit_price),
            "amount": str(ln.amount),
        }
        for ln in booking.lines
    ]


def attendees_json(booking: Booking) -> list[dict[str, str | None]]:
    return [
        {"ticket_type_id": str(a.ticket_type_id), "name": a.name, "email": a.email}
        for a in booking.attendees
    ]


async def insert_booking(conn: AsyncConnection, booking: Booking) -> None:
    """Insert ``booking``'s row, its lines and its attendees as plain statements (SQLite's
    reservation and a waiting-list offer; ``booking_reserve`` does it in SQL on PostgreSQL)."""
    await conn.execute(bookings.insert().values({k: getattr(booking, k) for k in _COLUMNS}))
    await conn.execute(
        booking_lines.insert(),
        [
            {
                "booking_id": booking.id,
                "line_no": n,
                "ticket_type_id": ln.ticket_type_id,
                "name": ln.name,
                "quantity": ln.quantity,
                "unit_price": ln.unit_price,
                "amount": ln.amount,
            }
            for n, ln in enumerate(booking.lines)
        ],
    )
    if booking.attendees:
        await conn.execute(
            booking_attendees.insert(),
            [
                {
                    "booking_id": booking.id,
                    "seat_no": n,
                    "ticket_type_id": a.ticket_type_id,
                    "name": a.name,
                    "email": a.email,
                }
                for n, a in enumerate(booking.attendees)
            ],
        )


# One round trip (migration 0002 explains why a function): take the seats if enough are free
# at the price the booking was built with, count them against the user's cap, insert the
# booking and its outbox row. A refusal changes nothing. The WHERE re-checks the inventory
# row's latest version after any lock wait, so concurrent holds can never oversell.
# The outbox row's arguments are the kit's (``outbox.values_sql``: its columns in table order,
# which is the order of the function's ``p_message_id ... p_headers``).
_RESERVE = sa.text(
    "SELECT outcome, event_status, available, ticket_type_id, type_available, lapsed FROM "
    "booking_reserve(CAST(:id AS uuid), CAST(:event_id AS uuid), CAST(:user_id AS uuid), "
    "CAST(:lines AS jsonb), CAST(:currency AS varchar), CAST(:discount AS numeric), "
    "CAST(:voucher_code AS varchar), CAST(:voucher_version AS integer), "
    "CAST(:attendees AS jsonb), "
    "CAST(:now AS timestamptz), CAST(:expires_at AS timestamptz), CAST(:user_cap AS integer), "
    f"{outbox.values_sql()}, CAST(:notify AS boolean))"
)

# A snapshot of the event, applied only if newer than the one we have. Capacity never drops
# below the seats already out; a cancelled event stays cancelled.
_APPLY_SNAPSHOT = sa.text(
    """
INSERT INTO inventory AS i (event_id, organizer_id, capacity, held, sold, price, currency,
                            status, version, updated_at, starts_at)
VALUES (CAST(:event_id AS uuid), CAST(:organizer_id AS uuid), CAST(:capacity AS integer), 0, 0,
        CAST(:price AS numeric), CAST(:currency AS varchar), CAST(:status AS varchar),
        CAST(:version AS integer), now(), CAST(:starts_at AS timestamptz))
ON CONFLICT (event_id) DO UPDATE SET
    capacity = GREATEST(EXCLUDED.capacity, i.held + i.sold),
    price = EXCLUDED.price,
    starts_at = EXCLUDED.starts_at,
    currency = EXCLUDED.currency,
    status = CASE WHEN i.status = 'cancelled' THEN 'cancelled' ELSE EXCLUDED.status END,
    version = GREATEST(EXCLUDED.version, i.version),
    updated_at = now()
WHERE i.version < EXCLUDED.version OR (EXCLUDED.status = 'cancelled' AND i.status <> 'cancelled')
RETURNING i.event_id
"""
)

# The snapshot's types (sorted by id: the lock order), after its event row was applied. A type's
# capacity never drops below its seats out; types no longer listed stop being sold.
_APPLY_TYPES = sa.text(
    """
WITH listed AS (
    INSERT INTO type_inventory AS t (event_id, ticket_type_id, name, price, capacity, held, sold,
                                     sales_start, sales_end, max_per_order, position, active,
                                     updated_at)
    SELECT CAST(:event_id AS uuid), s.id, s.name, s.price, s.capacity, 0, 0, s.sales_start,
           s.sales_end, s.max_per_order, s.position, true, now()
    FROM unnest(CAST(:ids AS uuid[]), CAST(:names AS varchar[]), CAST(:prices AS numeric[]),
                CAST(:capacities AS integer[]), CAST(:starts AS timestamptz[]),
                CAST(:ends AS timestamptz[]), CAST(:maxes AS integer[]),
                CAST(:positions AS integer[]))
         AS s(id, name, price, capacity, sales_start, sales_end, max_per_order, position)
    ORDER BY s.id
    ON CONFLICT (event_id, ticket_type_id) DO UPDATE SET
        name = EXCLUDED.name, price = EXCLUDED.price,
        capacity = CASE WHEN EXCLUDED.capacity IS NULL THEN NULL
                        ELSE GREATEST(EXCLUDED.capacity, t.held + t.sold) END,
        sales_start = EXCLUDED.sales_start, sales_end = EXCLUDED.sales_end,
        max_per_order = EXCLUDED.max_per_order, position = EXCLUDED.position, active = true,
        updated_at = now()
    RETURNING t.ticket_type_id
)
UPDATE type_inventory SET active = false, updated_at = now()
WHERE event_id = CAST(:event_id AS uuid) AND active
  AND ticket_type_id <> ALL (CAST(:ids AS uuid[]))
"""
)

_SET_CAPACITY = sa.text(
    """
WITH upd AS (
    UPDATE inventory SET capacity = CAST(:capacity AS integer), updated_at = now()
    WHERE event_id = CAST(:event_id AS uuid) AND held + sold <= CAST(:capacity AS integer)
    RETURNING capacity, held, sold
)
SELECT (SELECT count(*) FROM upd) AS applied, i.capacity, i.held, i.sold, i.organizer_id
FROM inventory AS i WHERE i.event_id = CAST(:event_id AS uuid)
"""
)

_SAVE_TRANSITIONS = sa.text(
    """
UPDATE bookings AS b
SET status = v.status, payment_id = v.payment_id, cancellation_reason = v.reason,
    updated_at = v.updated_at
FROM unnest(CAST(:ids AS uuid[]), CAST(:previous AS varchar[]), CAST(:statuses AS varchar[]),
            CAST(:payment_ids AS uuid[]), CAST(:reasons AS varchar[]),
            CAST(:updated AS timestamptz[]))
     AS v(id, previous, status, payment_id, reason, updated_at)
WHERE b.id = v.id AND b.status = v.previous
"""
)

# Seat-counter changes that never take seats, applied at COMMIT by a deferred trigger
# (migration 0003): event rows first, then type rows, then user rows, each sorted — the lock order.
_DEFER_SEAT_MOVES = sa.text(
    """
INSERT INTO seat_moves (event_id, ticket_type_id, user_id, held, sold, voucher_code)
SELECT event_id, ticket_type_id, user_id, held, sold, voucher_code FROM (
    SELECT 0 AS kind, e.event_id, NULL::uuid AS ticket_type_id, NULL::uuid AS user_id,
           e.held, e.sold, NULL::varchar AS voucher_code
    FROM unnest(CAST(:event_ids AS uuid[]), CAST(:event_held AS integer[]),
                CAST(:event_sold AS integer[])) AS e(event_id, held, sold)
    UNION ALL
    SELECT 1, t.event_id, t.type_id, NULL::uuid, t.held, t.sold, NULL::varchar
    FROM unnest(CAST(:type_events AS uuid[]), CAST(:type_ids AS uuid[]),
                CAST(:type_held AS integer[]), CAST(:type_sold AS integer[]))
         AS t(event_id, type_id, held, sold)
    UNION ALL
    SELECT 2, NULL::uuid, NULL::uuid, u.user_id, u.held, 0, NULL::varchar
    FROM unnest(CAST(:user_ids AS uuid[]), CAST(:user_held AS integer[])) AS u(user_id, held)
    UNION ALL
    SELECT 3, v.event_id, NULL::uuid, NULL::uuid, v.uses, 0, v.code
    FROM unnest(CAST(:voucher_events AS uuid[]), CAST(:voucher_codes AS varchar[]),
                CAST(:voucher_uses AS integer[])) AS v(event_id, code, uses)
) AS moves
ORDER BY kind, ticket_type_id, event_id, user_id, voucher_code
"""
)
# One booking's transition with everything that goes with it, as ONE statement (autocommit): the
# guarded status update, its seat moves (the event row, its types' rows sorted by id, then the
# user's row: the lock order),
# the consumer's inbox mark and the outbox row (both built by the kit). Applied only if the
# booking is still in the status it was read in and this consumer has not handled the message;
# otherwise nothing at all.
_TRANSITION_ONCE = sa.text(
    f"""
WITH upd AS (
    UPDATE bookings AS b
    SET status = CAST(:status AS varchar), payment_id = CAST(:payment_id AS uuid),
        cancellation_reason = CAST(:reason AS varchar),
        updated_at = CAST(:updated_at AS timestamptz)
    WHERE b.id = CAST(:id AS uuid) AND b.status = CAST(:previous AS varchar)
      AND NOT {inbox.marked_sql()}
    RETURNING b.id
), mark AS (
    {inbox.mark_sql("FROM upd")}
), moves AS (
    INSERT INTO seat_moves (event_id, ticket_type_id, user_id, held, sold, voucher_code)
    SELECT m.event_id, m.type_id, m.user_id, m.held, m.sold, m.voucher_code
    FROM upd, (
        VALUES (0, CAST(:event_id AS uuid), NULL::uuid, NULL::uuid, CAST(:event_held AS integer),
                CAST(:event_sold AS integer), NULL::varchar),
               (2, NULL::uuid, NULL::uuid, CAST(:user_id AS uuid), CAST(:user_held AS integer), 0,
                NULL::varchar),
               (3, CAST(:event_id AS uuid), NULL::uuid, NULL::uuid,
                CAST(:voucher_uses AS integer), 0, CAST(:voucher_code AS varchar))
        UNION ALL
        SELECT 1, CAST(:event_id AS uuid), t.type_id, NULL::uuid, t.held, t.sold, NULL::varchar
        FROM unnest(CAST(:type_ids AS uuid[]), CAST(:type_held AS integer[]),
                    CAST(:type_sold AS integer[])) AS t(type_id, held, sold)
    ) AS m(kind, event_id, type_id, user_id, held, sold, voucher_code)
    WHERE (m.held <> 0 OR m.sold <> 0) AND (m.kind <> 3 OR m.voucher_code IS NOT NULL)
    ORDER BY m.kind, m.type_id
), issued AS (
    INSERT INTO tickets (id, booking_id, event_id, ticket_type_id, seat_no, attendee_name,
                         status, secret, issued_at, changed_at)
    SELECT t.id, upd.id, CAST(:event_id AS uuid), t.type_id, t.seat_no, t.name, 'valid',
           t.secret, CAST(:updated_at AS timestamptz), CAST(:updated_at AS timestamptz)
    FROM upd, unnest(CAST(:ticket_ids AS uuid[]), CAST(:ticket_types AS uuid[]),
                     CAST(:ticket_seats AS integer[]), CAST(:ticket_names AS varchar[]),
                     CAST(:ticket_secrets AS text[]))
         AS t(id, type_id, seat_no, name, secret)
    ON CONFLICT (id) DO NOTHING
), written AS (
    {outbox.insert_sql("FROM upd")}
)
SELECT count(*) FROM upd
"""
)
# A late payment sells its seats again only as a hold could be made now: the event still on
# sale and not started; its types active and within their sales window. (A negative ``qty``
# undoes a re-take under the same locks, whatever the clock says meanwhile.)
_RETAKE_SEATS = sa.text(
    """
UPDATE inventory SET sold = sold + CAST(:qty AS integer), updated_at = now()
WHERE event_id = CAST(:event_id AS uuid) AND status = 'scheduled'
  AND capacity - held - sold >= CAST(:qty AS integer)
  AND (CAST(:qty AS integer) < 0 OR starts_at IS NULL OR now() < starts_at)
"""
)
# A late payment's types, after its event row (sorted by id: the lock order); each only if
# its own capacity allows. The caller compares the count with its lines and undoes if short.
_RETAKE_TYPE = sa.text(
    """
UPDATE type_inventory SET sold = sold + CAST(:qty AS integer), updated_at = now()
WHERE event_id = CAST(:event_id AS uuid) AND ticket_type_id = CAST(:type_id AS uuid)
  AND (capacity IS NULL OR capacity - held - sold >= CAST(:qty AS integer))
  AND (CAST(:qty AS integer) < 0
       OR (active AND (sales_start IS NULL OR now() >= sales_start)
           AND (sales_end IS NULL OR now() < sales_end)))
"""
)


def voucher_totals(transitions: Iterable[Transition]) -> dict[tuple[uuid.UUID, str], int]:
    """The transitions' changes of voucher uses per (event, code), those summing to 0 left out."""
    per_voucher: dict[tuple[uuid.UUID, str], int] = defaultdict(int)
    for t in transitions:
        if t.seats.voucher and t.booking.voucher_code is not None:
            per_voucher[(t.booking.event_id, t.booking.voucher_code)] += t.seats.voucher
    return {k: d for k, d in per_voucher.items() if d}


def seat_totals(
    transitions: Iterable[Transition],
) -> tuple[
    dict[uuid.UUID, list[int]], dict[tuple[uuid.UUID, uuid.UUID], list[int]], dict[uuid.UUID, int]
]:
    """The transitions' seat changes summed: per event ``[held, sold]``, per (event, ticket type)
    ``[held, sold]``, per user held seats (users whose total is 0 left out)."""
    per_event: dict[uuid.UUID, list[int]] = defaultdict(lambda: [0, 0])
    per_type: dict[tuple[uuid.UUID, uuid.UUID], list[int]] = defaultdict(lambda: [0, 0])
    per_user: dict[uuid.UUID, int] = defaultdict(int)
    for t in transitions:
        if t.seats.held or t.seats.sold:
            per_event[t.booking.event_id][0] += t.seats.held
            per_event[t.booking.event_id][1] += t.seats.sold
            for type_id, held, sold in t.booking.type_seats(t.seats):
                per_type[(t.booking.event_id, type_id)][0] += held
                per_type[(t.booking.event_id, type_id)][1] += sold
        if t.seats.user_held:
            per_user[t.booking.user_id] += t.seats.user_held
    return per_event, per_type, {u: d for u, d in per_user.items() if d}


class ConcurrentModification(RuntimeError):
    """A guarded status update matched fewer rows than locked: never expected; retried."""


# Built once (building a statement per call costs more CPU than its round trip).
_BOOKING = sa.select(bookings).where(bookings.c.id == sa.bindparam("booking_id"))
_BOOKING_FOR_UPDATE = _BOOKING.with_for_update()


class BookingRepository:
    """On PostgreSQL. SQLite (the embedded mode) has its twin, ``SqliteBookingRepository``: the
    service picks one for its database when it is built (``BookingDeps.repository``)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    # --- inventory -----------------------------------------------------------------------------

    async def reserve(
        self,
        booking: Booking,
        *,
        user_cap: int,
        outbox_row: dict[str, Any],
        notify: bool,
        voucher_version: int | None = None,
    ) -> ReserveOutcome:
        """Hold the seats of every line of a new pending ``booking`` (built at the lines' unit
        prices, re-checked) and write it, its lines and attendees and its ``booking_created``
        outbox row; or change nothing and say why not. A booking with a voucher also takes one
        of its uses, if the voucher is still at ``voucher_version`` (its discount's terms)."""
        row = (
            await self.conn.execute(
                _RESERVE,
                {
                    "id": booking.id,
                    "event_id": booking.event_id,
                    "user_id": booking.user_id,
                    "lines": json.dumps(lines_json(booking)),
                    "currency": booking.currency,
                    "discount": booking.discount,
                    "voucher_code": booking.voucher_code,
                    "voucher_version": voucher_version,
                    "attendees": json.dumps(attendees_json(booking)),
                    "now": booking.created_at,
                    "expires_at": booking.expires_at,
                    "user_cap": user_cap,
                    **outbox.statement_params(outbox_row),
                    "notify": notify,
                },
            )
        ).one()
        return ReserveOutcome(
            row.outcome,
            row.event_status,
            row.available,
            row.ticket_type_id,
            row.type_available,
            bool(row.lapsed),
        )

    async def apply_snapshot(self, snapshot: EventSnapshot) -> bool:
        """Upsert the event's snapshot and its ticket types if newer; True if it changed
        anything."""
        row = (
            await self.conn.execute(
                _APPLY_SNAPSHOT,
                snapshot.columns(),
            )
        ).first()
        if row is None:
            return False
        types = list(snapshot.ticket_types)
        await self.conn.execute(
            _APPLY_TYPES,
            {
                "event_id": snapshot.event_id,
                "ids": [t.ticket_type_id for t in types],
                "names": [t.name for t in types],
                "prices": [t.price for t in types],
                "capacities": [t.capacity for t in types],
                "starts": [t.sales_start for t in types],
                "ends": [t.sales_end for t in types],
                "maxes": [t.max_per_order for t in types],
                "positions": list(range(len(types))),
            },
        )
        return True

    async def set_capacity(self, event_id: uuid.UUID, capacity: int) -> sa.Row | None:
        """Apply ``capacity`` if it is at least the seats held + sold, in one statement.

        Returns None for an unknown event, else a row with ``applied`` (0/1) and the counters
        as they were before.
        """
        return (
            await self.conn.execute(_SET_CAPACITY, {"event_id": event_id, "capacity": capacity})
        ).first()

    async def set_type_capacity(
        self, event_id: uuid.UUID, ticket_type_id: uuid.UUID, capacity: int
    ) -> tuple[bool, int, int] | None:
        """Set one ticket type's own capacity if it is at least the type's seats held + sold, in
        one conditional UPDATE (the same on SQLite). None for an unknown type, else (applied,
        held, sold) as they were."""
        where = (type_inventory.c.event_id == event_id) & (
            type_inventory.c.ticket_type_id == ticket_type_id
        )
        applied = await self.conn.execute(
            type_inventory.update()
            .where(where, type_inventory.c.held + type_inventory.c.sold <= capacity)
            .values(capacity=capacity, updated_at=datetime.now(UTC))
        )
        row = (
            await self.conn.execute(
                sa.select(type_inventory.c.held, type_inventory.c.sold).where(where)
            )
        ).first()
        if row is None:
            return None
        return applied.rowcount == 1, row.held, row.sold

    async def inventory(self, event_id: uuid.UUID) -> Inventory | None:
        row = (
            await self.conn.execute(sa.select(inventory).where(inventory.c.event_id == event_id))
        ).first()
        if row is None:
            return None
        return Inventory(**{f.name: getattr(row, f.name) for f in fields(Inventory)})

    async def ticket_types(self, event_id: uuid.UUID) -> list[TypeInventory]:
        """The event's types, in the snapshot's order (those no longer listed included)."""
        rows = await self.conn.execute(
            sa.select(type_inventory)
            .where(type_inventory.c.event_id == event_id)
            .order_by(type_inventory.c.position, type_inventory.c.ticket_type_id)
        )
        return [
            TypeInventory(**{f.name: getattr(r, f.name) for f in fields(TypeInventory)})
            for r in rows
        ]

    async def retake_seats(self, booking: Booking) -> bool:
        """Sell the booking's seats straight away if they are all free and could be held now (a
        late payment): the event's quota, then each type's own capacity and sales window;
        short on any, or the event started, nothing changes."""
        qty, event_id = booking.quantity, booking.event_id
        res = await self.conn.execute(_RETAKE_SEATS, {"event_id": event_id, "qty": qty})
        if res.rowcount != 1:
            return False
        taken: list[Line] = []
        for ln in sorted(booking.lines, key=lambda x: x.ticket_type_id):
            res = await self.conn.execute(
                _RETAKE_TYPE,
                {"event_id": event_id, "type_id": ln.ticket_type_id, "qty": ln.quantity},
            )
            if res.rowcount != 1:  # undo under the locks just taken: nobody saw the seats go
                for back in taken:
                    await self.conn.execute(
                        _RETAKE_TYPE,
                        {
                            "event_id": event_id,
                            "type_id": back.ticket_type_id,
                            "qty": -back.quantity,
                        },
                    )
                await self.conn.execute(_RETAKE_SEATS, {"event_id": event_id, "qty": -qty})
                return False
            taken.append(ln)
        if not await self.retake_voucher(booking):
            for back in taken:
                await self.conn.execute(
                    _RETAKE_TYPE,
                    {"event_id": event_id, "type_id": back.ticket_type_id, "qty": -back.quantity},
                )
            await self.conn.execute(_RETAKE_SEATS, {"event_id": event_id, "qty": -qty})
            return False
        return True

    # --- vouchers ------------------------------------------------------------------------------

    async def retake_voucher(self, booking: Booking) -> bool:
        """A late payment re-takes the use its expiry gave back, only if one is left (else the
        payment is refunded, like seats that are gone). True if none is needed."""
        if booking.voucher_code is None:
            return True
        res = await self.conn.execute(
            vouchers.update()
            .where(
                vouchers.c.event_id == booking.event_id,
                vouchers.c.code == booking.voucher_code,
                vouchers.c.used < vouchers.c.max_uses,
            )
            .values(used=vouchers.c.used + 1, updated_at=datetime.now(UTC))
        )
        return res.rowcount == 1

    async def voucher(self, event_id: uuid.UUID, code: str) -> Voucher | None:
        row = (
            await self.conn.execute(
                sa.select(vouchers).where(vouchers.c.event_id == event_id, vouchers.c.code == code)
            )
        ).first()
        return None if row is None else _to_voucher(row)

    async def apply_voucher(self, v: Voucher) -> bool:
        """Upsert a voucher's snapshot if newer than the one kept (``used`` stays as counted
        here); True if it changed anything."""
        values = _voucher_values(v)
        ins = insert_for(self.conn, vouchers).values(**values, used=0)
        stmt = ins.on_conflict_do_update(
            index_elements=[vouchers.c.event_id, vouchers.c.code],
            set_={k: ins.excluded[k] for k in values if k not in ("event_id", "code")},
            where=vouchers.c.version < ins.excluded.version,
        )
        return (await self.conn.execute(stmt)).rowcount == 1

    async def move_seats(self, transitions: Iterable[Transition]) -> None:
        """Apply the transitions' seat changes to the events' and users' counters, at COMMIT.

        Transitions never take seats (that is ``reserve``/``retake_seats``), so applying them
        at the very end cannot oversell; it keeps the events' hot rows locked only while
        PostgreSQL commits instead of for the rest of the transaction."""
        transitions = list(transitions)
        per_event, per_type, per_user = seat_totals(transitions)
        per_voucher = voucher_totals(transitions)
        events = sorted(per_event)
        types = sorted(per_type, key=lambda k: (k[1], k[0]))
        users = sorted(per_user)
        codes = sorted(per_voucher, key=lambda k: (k[0], k[1]))
        if not events and not users and not codes:
            return
        await self.conn.execute(
            _DEFER_SEAT_MOVES,
            {
                "event_ids": events,
                "event_held": [per_event[e][0] for e in events],
                "event_sold": [per_event[e][1] for e in events],
                "type_events": [k[0] for k in types],
                "type_ids": [k[1] for k in types],
                "type_held": [per_type[k][0] for k in types],
                "type_sold": [per_type[k][1] for k in types],
                "user_ids": users,
                "user_held": [per_user[u] for u in users],
                "voucher_events": [k[0] for k in codes],
                "voucher_codes": [k[1] for k in codes],
                "voucher_uses": [per_voucher[k] for k in codes],
            },
        )

    # --- bookings ------------------------------------------------------------------------------

    async def get(self, booking_id: uuid.UUID, *, for_update: bool = False) -> Booking | None:
        stmt = _BOOKING_FOR_UPDATE if for_update else _BOOKING
        row = (await self.conn.execute(stmt, {"booking_id": booking_id})).first()
        return (await with_lines(self.conn, [row]))[0] if row else None

    async def save_once(
        self,
        t: Transition,
        *,
        consumer: str,
        message_id: uuid.UUID,
        outbox_row: dict[str, Any],
        issued: Sequence[Ticket] = (),
    ) -> bool:
        """``save`` + ``move_seats`` of one transition, ``consumer``'s inbox mark of
        ``message_id``, ``outbox_row`` and the tickets a confirmation ``issued``, in one
        statement (run it in autocommit). False, with nothing written, if the booking left
        ``t.previous`` or the message was handled."""
        b = t.booking
        moves = b.type_seats(t.seats)
        row = (
            await self.conn.execute(
                _TRANSITION_ONCE,
                {
                    "id": b.id,
                    "previous": t.previous,
                    "status": b.status,
                    "payment_id": b.payment_id,
                    "reason": b.cancellation_reason,
                    "updated_at": b.updated_at,
                    "event_id": b.event_id,
                    "event_held": t.seats.held,
                    "event_sold": t.seats.sold,
                    "user_id": b.user_id,
                    "user_held": t.seats.user_held,
                    "type_ids": [m[0] for m in moves],
                    "type_held": [m[1] for m in moves],
                    "type_sold": [m[2] for m in moves],
                    "ticket_ids": [x.id for x in issued],
                    "ticket_types": [x.ticket_type_id for x in issued],
                    "ticket_seats": [x.seat_no for x in issued],
                    "ticket_names": [x.attendee_name for x in issued],
                    "ticket_secrets": [x.secret for x in issued],
                    "voucher_code": b.voucher_code,
                    "voucher_uses": t.seats.voucher,
                    **inbox.mark_params(consumer, message_id),
                    **outbox.statement_params(outbox_row),
                },
            )
        ).scalar_one()
        return row == 1

    async def save(self, transitions: Sequence[Transition]) -> None:
        """Write the transitions, each guarded by the status it started from."""
        if not transitions:
            return
        res = await self.conn.execute(
            _SAVE_TRANSITIONS,
            {
                "ids": [t.booking.id for t in transitions],
                "previous": [t.previous for t in transitions],
                "statuses": [t.booking.status for t in transitions],
                "payment_ids": [t.booking.payment_id for t in transitions],
                "reasons": [t.booking.cancellation_reason for t in transitions],
                "updated": [t.booking.updated_at for t in transitions],
            },
        )
        if res.rowcount != len(transitions):
            raise ConcurrentModification(
                f"{len(transitions) - res.rowcount} booking(s) changed under a lock"
            )

    async def record_payment(self, booking: Booking) -> bool:
        """Store a late payment's id on a cancelled booking, once."""
        res = await self.conn.execute(
            bookings.update()
            .where(bookings.c.id == booking.id, bookings.c.payment_id.is_(None))
            .values(payment_id=booking.payment_id, updated_at=booking.updated_at)
        )
        return res.rowcount == 1

    async def has_lapsed_holds(self, event_id: uuid.UUID, now: datetime) -> bool:
        """Whether the event has pending holds past their time at ``now`` (not swept yet)."""
        stmt = sa.select(
            sa.exists().where(
                bookings.c.event_id == event_id,
                bookings.c.status == "pending",
                bookings.c.expires_at <= now,
            )
        )
        return bool((await self.conn.execute(stmt)).scalar())

    async def lock_overdue(self, limit: int, *, event_id: uuid.UUID | None = None) -> list[Booking]:
        """Pending bookings whose hold lapsed (of one event, if given), locked; rows another
        sweeper holds are skipped."""
        stmt = (
            sa.select(bookings)
            .where(bookings.c.status == "pending", bookings.c.expires_at <= sa.func.now())
            .order_by(bookings.c.expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if event_id is not None:
            stmt = stmt.where(bookings.c.event_id == event_id)
        return await with_lines(self.conn, (await self.conn.execute(stmt)).all())

    async def lock_open_of_event(self, event_id: uuid.UUID) -> list[Booking]:
        stmt = (
            sa.select(bookings)
            .where(bookings.c.event_id == event_id, bookings.c.status.in_(("pending", "confirmed")))
            .order_by(bookings.c.id)
            .with_for_update()
        )
        return await with_lines(self.conn, (await self.conn.execute(stmt)).all())

    async def page(
        self,
        *,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None,
        user_id: uuid.UUID | None,
        event_id: uuid.UUID | None,
        status: BookingStatus | None,
    ) -> list[Booking]:
        filters = where_given(bookings, user_id=user_id, event_id=event_id, status=status)
        stmt = newest_first(bookings, *filters, limit=limit, before=before)
        return await with_lines(self.conn, (await self.conn.execute(stmt)).all())
