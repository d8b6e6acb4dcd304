"""Booking's PostgreSQL fast paths agree with their SQLite twins (the plain paths).

* A seat hold in one statement (``booking_reserve``, ``BookingRepository.reserve``) against
  ``SqliteBookingRepository.reserve`` (read, checks, then one write at a time).
* Seat moves deferred to COMMIT (the ``seat_moves`` trigger, ``BookingRepository.move_seats``)
  against SQLite's in-place counter updates.

The same story runs on a real PostgreSQL database and a real SQLite database, both built by the
service's own migrations: holds with every outcome, then confirmations, a failed payment, a
cancellation, an expiry, an event cancelled and a late payment. Each hold must get the same
answer, and both databases must end with the same bookings, inventory, user_holds and outbox
rows (and PostgreSQL with no seat move left behind).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from apps.booking import handlers
from apps.booking.adapters.repository import BookingRepository
from apps.booking.adapters.repository_sqlite import SqliteBookingRepository
from apps.booking.adapters.tables import (
    booking_attendees,
    booking_lines,
    bookings,
    inventory,
    type_inventory,
    user_holds,
)
from apps.booking.adapters.tickets import tickets
from apps.booking.domain import GENERAL_ADMISSION, Attendee, Booking, Line, general_type_id
from apps.booking.outbound import booking_details
from contracts.messages import (
    BookingCreated,
    EventCancelled,
    PaymentConfirmed,
    PaymentFailed,
    TicketType,
)
from kit.db import Database
from kit.outbox import OUTBOX
from kit.security import Principal
from kit.uow import UnitOfWork
from tests.booking.conftest import event_created, later
from tests.support.db import postgres_database, sqlite_database

pytestmark = pytest.mark.integration

USER_CAP = 4
# before the events start (the conftest schedules them 30 days ahead): nothing sells after
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
async def postgres() -> AsyncIterator[Database]:
    # A database of its own: the sweeper's "every overdue hold" must see only this story's
    # bookings.
    async with postgres_database("booking", "agree") as db:
        yield db


@pytest.fixture
async def postgres_for_lines() -> AsyncIterator[Database]:
    async with postgres_database("booking", "agree_lines") as db:  # (the same: its own)
        yield db


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[Database]:
    async with sqlite_database("booking", tmp_path) as db:  # its migrations, on SQLite (embedded)
        yield db


def held(
    *,
    event_id: uuid.UUID,
    user_id: uuid.UUID,
    lines: tuple[Line, ...],
    lapsed: bool,
    attendees: tuple[Attendee, ...] = (),
) -> Booking:
    """A hold of the story: one that lapsed a day ago, or one that lasts."""
    return Booking.hold(
        id=uuid.uuid4(),
        event_id=event_id,
        user_id=user_id,
        lines=lines,
        attendees=attendees,
        currency="EUR",
        now=NOW - timedelta(days=1) if lapsed else NOW,
        hold_for=timedelta(minutes=10) if lapsed else timedelta(days=3650),
    )


def created(b: Booking) -> BookingCreated:
    """The hold's message, as the route writes it."""
    return booking_details(b, BookingCreated, None, expires_at=b.expires_at)


class Story:
    """The fixed ids and messages of one story, shared by both databases so that every row the
    story writes from them is the same on both."""

    def __init__(self) -> None:
        self.users = [uuid.uuid4() for _ in range(6)]
        self.on_sale = event_created(capacity=5, price="20.00")
        self.to_cancel = event_created(capacity=6, price="10.00")
        self.cancelled_first = event_created(capacity=4, price="15.00")
        self.cancel_first = later(self.cancelled_first, EventCancelled, 2)
        self.cancel_later = later(self.to_cancel, EventCancelled, 2)
        # (user, event, quantity, price the caller read, hold lapsed already)
        unknown = uuid.uuid4()
        a, c, x = self.on_sale, self.to_cancel, self.cancelled_first
        u = self.users
        self.holds: list[tuple[uuid.UUID, uuid.UUID, int, str, bool]] = [
            (u[0], a.event_id, 2, "20.00", False),  # 0 enough seats
            (u[1], a.event_id, 2, "20.00", False),  # 1 enough seats, 1 left
            (u[2], a.event_id, 2, "20.00", False),  # 2 sold out
            (u[2], a.event_id, 1, "20.00", False),  # 3 exactly the last seat
            (u[0], c.event_id, 2, "10.00", False),  # 4 u0 now holds the cap
            (u[0], c.event_id, 1, "10.00", False),  # 5 hold cap reached
            (u[3], unknown, 1, "10.00", False),  # 6 unknown event
            (u[3], x.event_id, 1, "15.00", False),  # 7 cancelled event
            (u[3], c.event_id, 1, "99.00", False),  # 8 price changed
            (u[4], c.event_id, 1, "10.00", True),  # 9 lapses: expired by the sweeper
            (u[5], c.event_id, 2, "10.00", False),  # 10 paid, then its event is cancelled
            (u[4], a.event_id, 1, "20.00", False),  # 11 sold out until seats come back
        ]
        self.bookings = [
            held(
                event_id=event_id,
                user_id=user_id,
                lines=(Line(general_type_id(event_id), GENERAL_ADMISSION, qty, Decimal(price)),),
                lapsed=lapsed,
            )
            for user_id, event_id, qty, price, lapsed in self.holds
        ]
        self.created = [created(b) for b in self.bookings]

    @property
    def event_ids(self) -> list[uuid.UUID]:
        return [self.on_sale.event_id, self.to_cancel.event_id, self.cancelled_first.event_id]

    def paid(self, i: int, kind: type[PaymentConfirmed] | type[PaymentFailed]) -> Any:
        b = self.bookings[i]
        extra = (
            {"provider_reference": "sim_1"}
            if kind is PaymentConfirmed
            else {"failure_reason": "card_declined"}
        )
        return kind(
            payment_id=uuid.uuid4(),
            booking_id=b.id,
            user_id=b.user_id,
            event_id=b.event_id,
            amount=b.amount,
            currency=b.currency,
            **extra,
        )


async def in_unit_of_work(db: Database, step: Callable[[UnitOfWork], Awaitable[Any]]) -> Any:
    async with UnitOfWork(db) as uow:
        result = await step(uow)
        await uow.commit()
        return result


async def hold(db: Database, repository: type[BookingRepository], story: Any, i: int) -> str:
    """One hold as the route makes it (one statement, its own transaction); a refusal is
    committed too, so whatever it might have written would show."""
    async with UnitOfWork(db, single_statement=True) as uow:
        out = await repository(uow.conn).reserve(
            story.bookings[i],
            user_cap=USER_CAP,
            outbox_row=uow.publish(story.created[i], inline=True)[0],
            notify=False,
        )
        if out.outcome != "reserved":
            uow.discard_messages()
        await uow.commit()
    # The seats left matter only where the handler uses them, in a refusal for the event's sake
    # (they refresh the sold-out memory); a hold or a hold-cap refusal does not (and booking_reserve
    # leaves them out there).
    if out.outcome in ("reserved", "hold_limit"):
        return f"{out.outcome} {out.event_status}"
    line = "" if out.ticket_type_id is None else f" type {out.ticket_type_id}"
    return f"{out.outcome} {out.event_status} {out.available}{line}"


async def cancel(
    db: Database, repository: type[BookingRepository], story: Any, i: int, *, by: int
) -> None:
    """Booking i cancelled by the story's user ``by``, its owner."""
    actor = Principal(user_id=story.users[by], role="user", claims={})
    await in_unit_of_work(
        db,
        lambda uow: handlers.cancel_booking(
            uow, repository=repository, booking_id=story.bookings[i].id, actor=actor
        ),
    )


async def expire(db: Database, repository: type[BookingRepository]) -> str:
    """The sweeper's pass; its answer as the story records it."""
    expired = await in_unit_of_work(
        db, lambda uow: handlers.expire_overdue_holds(uow, repository=repository, batch_size=50)
    )
    return f"expired {expired}"


async def play(db: Database, repository: type[BookingRepository], story: Story) -> list[str]:
    """The whole story on one database; returns the holds' answers."""

    def consume(handler: Any, message: Any) -> Awaitable[Any]:
        return in_unit_of_work(db, lambda uow: handler(message, uow, repository=repository))

    for event in (story.on_sale, story.to_cancel, story.cancelled_first):
        await consume(handlers.apply_event_snapshot, event)
    await consume(handlers.cancel_event_bookings, story.cancel_first)

    answers = [await hold(db, repository, story, i) for i in range(11)]
    await consume(handlers.confirm_booking, story.paid(0, PaymentConfirmed))
    await consume(handlers.fail_booking, story.paid(1, PaymentFailed))
    await cancel(db, repository, story, 3, by=2)
    # the seats of bookings 1 and 3 are back on sale: the same hold now succeeds
    answers.append(await hold(db, repository, story, 11))
    answers.append(await expire(db, repository))
    await consume(handlers.confirm_booking, story.paid(10, PaymentConfirmed))
    await consume(handlers.cancel_event_bookings, story.cancel_later)
    # paid after its hold lapsed and its event was cancelled: no seats to retake, refunded
    await consume(handlers.confirm_booking, story.paid(9, PaymentConfirmed))
    return answers


def _row(r: sa.Row, drop: set[str]) -> dict[str, Any]:
    return {k: v for k, v in r._mapping.items() if k not in drop}


# what each run makes anew: the transitions' clock and the ids and clock of their messages
_MADE_PER_RUN = {"message_id", "occurred_at", "payment_id", "correlation_id", "causation_id"}


def _message(r: sa.Row) -> dict[str, Any]:
    payload = {k: v for k, v in r.payload.items() if k not in _MADE_PER_RUN}
    if "tickets" in payload:  # each database signs with its own event keys
        payload["tickets"] = [
            {k: v for k, v in t.items() if k != "secret"} for t in payload["tickets"]
        ]
    return {"routing_key": r.routing_key, "message_type": r.message_type, "payload": payload}


async def state(db: Database, story: Any) -> dict[str, Any]:
    events = story.event_ids
    async with db.read() as conn:

        async def all_of(stmt: Any) -> list[sa.Row]:
            return list((await conn.execute(stmt)).all())

        booking_rows = await all_of(sa.select(bookings))
        ids = {b.id: i for i, b in enumerate(story.bookings)}
        return {
            "bookings": sorted(
                (
                    {**_row(r, {"updated_at", "payment_id"}), "paid": r.payment_id is not None}
                    for r in booking_rows
                ),
                key=lambda b: ids[b["id"]],
            ),
            "lines": sorted(
                (_row(r, set()) for r in await all_of(sa.select(booking_lines))),
                key=lambda r: (ids[r["booking_id"]], r["line_no"]),
            ),
            "attendees": sorted(
                (_row(r, set()) for r in await all_of(sa.select(booking_attendees))),
                key=lambda r: (ids[r["booking_id"]], r["seat_no"]),
            ),
            "inventory": sorted(
                (_row(r, {"updated_at"}) for r in await all_of(sa.select(inventory))),
                key=lambda r: events.index(r["event_id"]),
            ),
            "type_inventory": sorted(
                (_row(r, {"updated_at"}) for r in await all_of(sa.select(type_inventory))),
                key=lambda r: (events.index(r["event_id"]), r["position"]),
            ),
            "user_holds": sorted(
                (_row(r, set()) for r in await all_of(sa.select(user_holds))),
                key=lambda r: story.users.index(r["user_id"]),
            ),
            # the holds' rows are the story's own (same ids); the rest are compared as messages
            "held": sorted(
                str(r.id) for r in await all_of(sa.select(OUTBOX.c.id)) if r.id in ids.keys()
            ),
            "tickets": sorted(
                (
                    _row(r, {"secret", "issued_at", "changed_at", "redeemed_at"})
                    for r in await all_of(sa.select(tickets))
                ),
                key=lambda r: (ids[r["booking_id"]], r["seat_no"]),
            ),
            "outbox": sorted(
                (_message(r) for r in await all_of(sa.select(OUTBOX))),
                key=lambda m: (m["routing_key"], str(sorted(m["payload"].items()))),
            ),
        }


async def seat_moves_left(db: Database) -> int:
    """PostgreSQL's seat moves not yet applied (each is applied at its transaction's COMMIT)."""
    async with db.read() as conn:
        return (await conn.execute(sa.text("SELECT count(*) FROM seat_moves"))).scalar_one()


async def test_holds_and_seat_moves_leave_the_same_rows_on_postgresql_and_sqlite(
    postgres: Database, sqlite: Database
) -> None:
    assert postgres.is_postgres and not sqlite.is_postgres
    story = Story()
    on_postgres = await play(postgres, BookingRepository, story)
    on_sqlite = await play(sqlite, SqliteBookingRepository, story)

    # every outcome the story means to cover, on PostgreSQL ...
    assert [a.split()[0] for a in on_postgres] == [
        "reserved",
        "reserved",
        "sold_out",
        "reserved",
        "reserved",
        "hold_limit",
        "event_unknown",
        "not_on_sale",
        "price_changed",
        "reserved",
        "reserved",
        "reserved",
        "expired",
    ]
    # ... and the very same answers (status and seats left included) on SQLite
    assert on_sqlite == on_postgres

    pg, lite = await state(postgres, story), await state(sqlite, story)
    assert await seat_moves_left(postgres) == 0
    assert lite["bookings"] == pg["bookings"]
    assert lite["inventory"] == pg["inventory"]
    assert lite["type_inventory"] == pg["type_inventory"]
    assert lite["user_holds"] == pg["user_holds"]
    assert lite["held"] == pg["held"]
    assert lite["outbox"] == pg["outbox"]
    assert lite["tickets"] == pg["tickets"]
    # the confirmed booking's tickets were issued with it, the one paid after being cancelled
    # got none, and a cancelled confirmed booking's are void
    assert {(r["booking_id"], r["status"]) for r in pg["tickets"]} <= {
        (b["id"], "valid" if b["status"] == "confirmed" else "void") for b in pg["bookings"]
    }
    assert any(r["status"] == "valid" for r in pg["tickets"])
    # the story moved seats every way (sold, released, refunded), and none is left pending
    assert [(r["held"], r["sold"]) for r in pg["inventory"]] == [(1, 2), (0, 0), (0, 0)]
    # each event's one type moved exactly as its event
    assert [(r["held"], r["sold"]) for r in pg["type_inventory"]] == [(1, 2), (0, 0), (0, 0)]
    assert [b["status"] for b in pg["bookings"]] == [
        "confirmed",
        "cancelled",
        "cancelled",
        "cancelled",
        "cancelled",
        "cancelled",
        "pending",
    ]


class LinesStory:
    """Multi-line orders over several ticket types of one event (capacity 6): Early (3 seats,
    10.00), Regular (no cap of its own, 20.00), VIP (2 seats, 50.00, 1 per order) and Late (on
    sale only from tomorrow, 30.00). Every line of an order is held, or none."""

    def __init__(self) -> None:
        self.users = [uuid.uuid4() for _ in range(4)]
        early, regular, vip, late = self.types = [
            TicketType(ticket_type_id=uuid.uuid4(), name="Early", price="10.00", capacity=3),
            TicketType(ticket_type_id=uuid.uuid4(), name="Regular", price="20.00"),
            TicketType(
                ticket_type_id=uuid.uuid4(),
                name="VIP",
                price="50.00",
                capacity=2,
                max_per_order=1,
            ),
            TicketType(
                ticket_type_id=uuid.uuid4(),
                name="Late",
                price="30.00",
                sales_start=NOW + timedelta(days=1),
            ),
        ]
        self.event = event_created(capacity=6, ticket_types=self.types)
        unknown = TicketType(ticket_type_id=uuid.uuid4(), name="Gone", price="10.00")
        u = self.users
        # (user, [(type, quantity, unit price the caller read)], attendees given, lapsed)
        self.holds: list[tuple[uuid.UUID, list[tuple[TicketType, int, str]], bool, bool]] = [
            # 0 three lines, with attendees: event 4 of 6, Early 2 of 3, VIP 1 of 2
            (u[0], [(early, 2, "10.00"), (regular, 1, "20.00"), (vip, 1, "50.00")], True, False),
            # 1 Early is one short: nothing is held, not even the Regular line
            (u[1], [(early, 2, "10.00"), (regular, 1, "20.00")], False, False),
            (u[1], [(vip, 2, "50.00")], False, False),  # 2 more than VIP's max per order
            (u[1], [(late, 1, "30.00")], False, False),  # 3 Late not on sale yet
            (u[1], [(unknown, 1, "10.00")], False, False),  # 4 no such type
            # 5 Regular's price is not what the caller read
            (u[1], [(early, 1, "10.00"), (regular, 1, "25.00")], False, False),
            # 6 the last two seats of the event: Early 3 of 3, VIP 2 of 2
            (u[1], [(early, 1, "10.00"), (vip, 1, "50.00")], True, False),
            (u[2], [(regular, 1, "20.00")], False, False),  # 7 the event's quota is gone
            # 8 (after 6 is cancelled) lapses: expired by the sweeper, then
            (u[2], [(vip, 1, "50.00"), (regular, 1, "20.00")], False, True),
            (u[3], [(early, 1, "10.00"), (regular, 1, "20.00")], False, False),  # 9 payment fails
        ]
        self.bookings = []
        for user_id, order, with_attendees, lapsed in self.holds:
            lines = tuple(Line(t.ticket_type_id, t.name, q, Decimal(p)) for t, q, p in order)
            attendees = (
                tuple(
                    Attendee(ln.ticket_type_id, f"Guest {n}", f"guest{n}@example.org")
                    for n, ln in enumerate(x for ln in lines for x in [ln] * ln.quantity)
                )
                if with_attendees
                else ()
            )
            self.bookings.append(
                held(
                    event_id=self.event.event_id,
                    user_id=user_id,
                    lines=lines,
                    attendees=attendees,
                    lapsed=lapsed,
                )
            )
        self.created = [created(b) for b in self.bookings]

    @property
    def event_ids(self) -> list[uuid.UUID]:
        return [self.event.event_id]

    paid = Story.paid


async def play_lines(
    db: Database, repository: type[BookingRepository], story: LinesStory
) -> list[str]:
    def consume(handler: Any, message: Any) -> Awaitable[Any]:
        return in_unit_of_work(db, lambda uow: handler(message, uow, repository=repository))

    await consume(handlers.apply_event_snapshot, story.event)
    answers = [await hold(db, repository, story, i) for i in range(8)]
    await consume(handlers.confirm_booking, story.paid(0, PaymentConfirmed))
    await cancel(db, repository, story, 6, by=1)
    answers.append(await hold(db, repository, story, 8))
    answers.append(await expire(db, repository))
    answers.append(await hold(db, repository, story, 9))  # the expired hold's seats again
    await consume(handlers.fail_booking, story.paid(9, PaymentFailed))
    return answers


async def test_multi_line_orders_over_several_types_leave_the_same_rows_on_both(
    postgres_for_lines: Database, sqlite: Database
) -> None:
    postgres = postgres_for_lines
    story = LinesStory()
    on_postgres = await play_lines(postgres, BookingRepository, story)
    on_sqlite = await play_lines(sqlite, SqliteBookingRepository, story)

    _, _, vip, late = (t.ticket_type_id for t in story.types)
    assert [" ".join(a.split()[:1] + a.split()[3:]) for a in on_postgres] == [
        "reserved",
        "sold_out",  # (Early's own capacity: the answer names no line)
        f"too_many type {vip}",
        f"sales_not_started type {late}",
        f"type_unknown type {story.bookings[4].lines[0].ticket_type_id}",
        "price_changed type " + str(story.types[1].ticket_type_id),
        "reserved",
        "sold_out",
        "reserved",
        "expired",
        "reserved",
    ]
    assert on_postgres[9] == "expired 1"
    assert on_sqlite == on_postgres

    pg, lite = await state(postgres, story), await state(sqlite, story)
    assert await seat_moves_left(postgres) == 0
    for table in ("bookings", "lines", "attendees", "inventory", "type_inventory", "user_holds"):
        assert lite[table] == pg[table], table
    assert lite["held"] == pg["held"]
    assert lite["outbox"] == pg["outbox"]
    # the refused orders left no line behind; the held ones all their lines and attendees
    assert {r["booking_id"] for r in pg["lines"]} == {story.bookings[i].id for i in (0, 6, 8, 9)}
    assert len(pg["attendees"]) == 4 + 2
    # only booking 0 is still out (sold): each type's counters moved with its lines
    assert [(r["held"], r["sold"]) for r in pg["inventory"]] == [(0, 4)]
    assert [(r["name"], r["held"], r["sold"]) for r in pg["type_inventory"]] == [
        ("Early", 0, 2),
        ("Regular", 0, 1),
        ("VIP", 0, 1),
        ("Late", 0, 0),
    ]
    assert [b["status"] for b in pg["bookings"]] == [
        "confirmed",
        "cancelled",
        "expired",
        "cancelled",
    ]
