"""Booking database access. Takes the unit of work's connection; never commits.

Lock order, the same in every transaction so they cannot deadlock each other: a booking row,
then event inventory rows (sorted by id), then user-hold rows (sorted by id). A reservation
inserts a *new* booking row (nobody can be waiting on it), then takes the inventory row, then
the user's row (one statement, ``booking_reserve``). Seat changes that never take seats
(confirm, expire, cancel) are applied at COMMIT in that order by a deferred trigger (migration
0003), so the events' hot rows are locked only while PostgreSQL commits. Cancelling a whole
event takes its inventory row first (so no new hold can slip in while its bookings are
cancelled); a deadlock with a payment for one of its bookings at that very instant is
possible, PostgreSQL breaks it and the message is retried."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from apps.booking.adapters.tables import bookings, inventory
from apps.booking.domain import Booking, BookingStatus, Transition
from kit import inbox, outbox

_COLUMNS = [f.name for f in fields(Booking)]


def _to_booking(row: sa.Row) -> Booking:
    return Booking(**{k: getattr(row, k) for k in _COLUMNS})


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

    @property
    def available(self) -> int:
        return self.capacity - self.held - self.sold


ReserveResult = Literal[
    "reserved", "event_unknown", "not_on_sale", "sold_out", "price_changed", "hold_limit"
]


@dataclass(frozen=True)
class ReserveOutcome:
    """The reservation's answer: ``reserved``, or why not (with what the event looked like)."""

    outcome: ReserveResult
    event_status: str | None  # None: booking does not know the event
    available: int | None


# One round trip (migration 0002 explains why a function): take the seats if enough are free
# at the price the booking was built with, count them against the user's cap, insert the
# booking and its outbox row. A refusal changes nothing. The WHERE re-checks the inventory
# row's latest version after any lock wait, so concurrent holds can never oversell.
# The outbox row's arguments are the kit's (``outbox.values_sql``: its columns in table order,
# which is the order of the function's ``p_message_id ... p_headers``).
_RESERVE = sa.text(
    "SELECT outcome, event_status, available FROM booking_reserve("
    "CAST(:id AS uuid), CAST(:event_id AS uuid), CAST(:user_id AS uuid), CAST(:qty AS integer), "
    "CAST(:price AS numeric), CAST(:currency AS varchar), CAST(:amount AS numeric), "
    "CAST(:now AS timestamptz), CAST(:expires_at AS timestamptz), CAST(:user_cap AS integer), "
    f"{outbox.values_sql()}, CAST(:notify AS boolean))"
)

# A snapshot of the event, applied only if newer than the one we have. Capacity never drops
# below the seats already out; a cancelled event stays cancelled.
_APPLY_SNAPSHOT = sa.text(
    """
INSERT INTO inventory AS i (event_id, organizer_id, capacity, held, sold, price, currency,
                            status, version, updated_at)
VALUES (CAST(:event_id AS uuid), CAST(:organizer_id AS uuid), CAST(:capacity AS integer), 0, 0,
        CAST(:price AS numeric), CAST(:currency AS varchar), CAST(:status AS varchar),
        CAST(:version AS integer), now())
ON CONFLICT (event_id) DO UPDATE SET
    capacity = GREATEST(EXCLUDED.capacity, i.held + i.sold),
    price = EXCLUDED.price,
    currency = EXCLUDED.currency,
    status = CASE WHEN i.status = 'cancelled' THEN 'cancelled' ELSE EXCLUDED.status END,
    version = GREATEST(EXCLUDED.version, i.version),
    updated_at = now()
WHERE i.version < EXCLUDED.version OR (EXCLUDED.status = 'cancelled' AND i.status <> 'cancelled')
RETURNING i.event_id
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
# (migration 0003): event rows first, then user rows, each sorted — the lock order.
_DEFER_SEAT_MOVES = sa.text(
    """
INSERT INTO seat_moves (event_id, user_id, held, sold)
SELECT event_id, user_id, held, sold FROM (
    SELECT 0 AS kind, e.event_id, NULL::uuid AS user_id, e.held, e.sold
    FROM unnest(CAST(:event_ids AS uuid[]), CAST(:event_held AS integer[]),
                CAST(:event_sold AS integer[])) AS e(event_id, held, sold)
    UNION ALL
    SELECT 1, NULL::uuid, u.user_id, u.held, 0
    FROM unnest(CAST(:user_ids AS uuid[]), CAST(:user_held AS integer[])) AS u(user_id, held)
) AS moves
ORDER BY kind, event_id, user_id
"""
)
# One booking's transition with everything that goes with it, as ONE statement (autocommit): the
# guarded status update, its seat moves (event row first, then the user row: the lock order),
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
    INSERT INTO seat_moves (event_id, user_id, held, sold)
    SELECT m.event_id, m.user_id, m.held, m.sold
    FROM upd, (VALUES
        (0, CAST(:event_id AS uuid), NULL::uuid, CAST(:event_held AS integer),
         CAST(:event_sold AS integer)),
        (1, NULL::uuid, CAST(:user_id AS uuid), CAST(:user_held AS integer), 0)
    ) AS m(kind, event_id, user_id, held, sold)
    WHERE m.held <> 0 OR m.sold <> 0
    ORDER BY m.kind
), written AS (
    {outbox.insert_sql("FROM upd")}
)
SELECT count(*) FROM upd
"""
)
_RETAKE_SEATS = sa.text(
    """
UPDATE inventory SET sold = sold + CAST(:qty AS integer), updated_at = now()
WHERE event_id = CAST(:event_id AS uuid) AND status = 'scheduled'
  AND capacity - held - sold >= CAST(:qty AS integer)
"""
)


def seat_totals(
    transitions: Iterable[Transition],
) -> tuple[dict[uuid.UUID, list[int]], dict[uuid.UUID, int]]:
    """The transitions' seat changes summed: per event ``[held, sold]``, per user held seats
    (users whose total is 0 left out)."""
    per_event: dict[uuid.UUID, list[int]] = defaultdict(lambda: [0, 0])
    per_user: dict[uuid.UUID, int] = defaultdict(int)
    for t in transitions:
        if t.seats.held or t.seats.sold:
            per_event[t.booking.event_id][0] += t.seats.held
            per_event[t.booking.event_id][1] += t.seats.sold
        if t.seats.user_held:
            per_user[t.booking.user_id] += t.seats.user_held
    return per_event, {u: d for u, d in per_user.items() if d}


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
        price: Decimal,
        user_cap: int,
        outbox_row: dict[str, Any],
        notify: bool,
    ) -> ReserveOutcome:
        """Hold the seats of a new pending ``booking`` (built at ``price`` per seat) and write
        its ``booking_created`` outbox row, or change nothing and say why not."""
        row = (
            await self.conn.execute(
                _RESERVE,
                {
                    "id": booking.id,
                    "event_id": booking.event_id,
                    "user_id": booking.user_id,
                    "qty": booking.quantity,
                    "price": price,
                    "currency": booking.currency,
                    "amount": booking.amount,
                    "now": booking.created_at,
                    "expires_at": booking.expires_at,
                    "user_cap": user_cap,
                    **outbox.statement_params(outbox_row),
                    "notify": notify,
                },
            )
        ).one()
        return ReserveOutcome(row.outcome, row.event_status, row.available)

    async def apply_snapshot(
        self,
        *,
        event_id: uuid.UUID,
        organizer_id: uuid.UUID,
        capacity: int,
        price: Decimal,
        currency: str,
        status: str,
        version: int,
    ) -> bool:
        """Upsert the event's snapshot if newer; True if it changed anything."""
        row = (
            await self.conn.execute(
                _APPLY_SNAPSHOT,
                {
                    "event_id": event_id,
                    "organizer_id": organizer_id,
                    "capacity": capacity,
                    "price": price,
                    "currency": currency,
                    "status": status,
                    "version": version,
                },
            )
        ).first()
        return row is not None

    async def set_capacity(self, event_id: uuid.UUID, capacity: int) -> sa.Row | None:
        """Apply ``capacity`` if it is at least the seats held + sold, in one statement.

        Returns None for an unknown event, else a row with ``applied`` (0/1) and the counters
        as they were before.
        """
        return (
            await self.conn.execute(_SET_CAPACITY, {"event_id": event_id, "capacity": capacity})
        ).first()

    async def inventory(self, event_id: uuid.UUID) -> Inventory | None:
        row = (
            await self.conn.execute(sa.select(inventory).where(inventory.c.event_id == event_id))
        ).first()
        if row is None:
            return None
        return Inventory(**{f.name: getattr(row, f.name) for f in fields(Inventory)})

    async def retake_seats(self, event_id: uuid.UUID, quantity: int) -> bool:
        """Sell ``quantity`` seats straight away if they are free (a late payment)."""
        res = await self.conn.execute(_RETAKE_SEATS, {"event_id": event_id, "qty": quantity})
        return res.rowcount == 1

    async def move_seats(self, transitions: Iterable[Transition]) -> None:
        """Apply the transitions' seat changes to the events' and users' counters, at COMMIT.

        Transitions never take seats (that is ``reserve``/``retake_seats``), so applying them
        at the very end cannot oversell; it keeps the events' hot rows locked only while
        PostgreSQL commits instead of for the rest of the transaction."""
        per_event, per_user = seat_totals(transitions)
        events = sorted(per_event)
        users = sorted(per_user)
        if not events and not users:
            return
        await self.conn.execute(
            _DEFER_SEAT_MOVES,
            {
                "event_ids": events,
                "event_held": [per_event[e][0] for e in events],
                "event_sold": [per_event[e][1] for e in events],
                "user_ids": users,
                "user_held": [per_user[u] for u in users],
            },
        )

    # --- bookings ------------------------------------------------------------------------------

    async def get(self, booking_id: uuid.UUID, *, for_update: bool = False) -> Booking | None:
        stmt = _BOOKING_FOR_UPDATE if for_update else _BOOKING
        row = (await self.conn.execute(stmt, {"booking_id": booking_id})).first()
        return _to_booking(row) if row else None

    async def save_once(
        self, t: Transition, *, consumer: str, message_id: uuid.UUID, outbox_row: dict[str, Any]
    ) -> bool:
        """``save`` + ``move_seats`` of one transition, ``consumer``'s inbox mark of
        ``message_id`` and ``outbox_row``, in one statement (run it in autocommit). False, with
        nothing written, if the booking left ``t.previous`` or the message was handled."""
        b = t.booking
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

    async def lock_overdue(self, limit: int) -> list[Booking]:
        """Pending bookings whose hold lapsed, locked; rows another sweeper holds are skipped."""
        stmt = (
            sa.select(bookings)
            .where(bookings.c.status == "pending", bookings.c.expires_at <= sa.func.now())
            .order_by(bookings.c.expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [_to_booking(r) for r in (await self.conn.execute(stmt)).all()]

    async def lock_open_of_event(self, event_id: uuid.UUID) -> list[Booking]:
        stmt = (
            sa.select(bookings)
            .where(bookings.c.event_id == event_id, bookings.c.status.in_(("pending", "confirmed")))
            .order_by(bookings.c.id)
            .with_for_update()
        )
        return [_to_booking(r) for r in (await self.conn.execute(stmt)).all()]

    async def page(
        self,
        *,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None,
        user_id: uuid.UUID | None,
        event_id: uuid.UUID | None,
        status: BookingStatus | None,
    ) -> list[Booking]:
        stmt = (
            sa.select(bookings)
            .order_by(bookings.c.created_at.desc(), bookings.c.id.desc())
            .limit(limit)
        )
        if before is not None:
            stmt = stmt.where(sa.tuple_(bookings.c.created_at, bookings.c.id) < sa.tuple_(*before))
        if user_id is not None:
            stmt = stmt.where(bookings.c.user_id == user_id)
        if event_id is not None:
            stmt = stmt.where(bookings.c.event_id == event_id)
        if status is not None:
            stmt = stmt.where(bookings.c.status == status)
        return [_to_booking(r) for r in (await self.conn.execute(stmt)).all()]
