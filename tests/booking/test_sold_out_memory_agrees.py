"""The sold-out memory (``AvailabilityCache``, ``BOOKING_AVAILABILITY_CACHE_SECONDS``) agrees
with a replica that reads every time (TTL 0, the plain path), on the real PostgreSQL database.

Two replicas of the same database: one remembers (its clock is the test's, so "the TTL has
passed" is exact), the other reads on every attempt. The other replica holds, cancels and the
event is cancelled; after each change the remembering replica may answer from what it saw
(only ever a refusal: the documented cost), but once the TTL has passed it answers what the
reading replica answers. And it never sells from memory: where memory says seats are left but
the database has none, the hold goes to the database and is refused there.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from apps.booking import handlers
from apps.booking.adapters.availability import AvailabilityCache
from apps.booking.adapters.repository import BookingRepository
from apps.booking.domain import Booking, BookingError
from contracts.messages import EventCancelled
from kit.db import Database
from kit.security import Principal
from kit.uow import UnitOfWork, run_in_unit_of_work
from tests.booking.conftest import event_created, later
from tests.support.db import postgres_database

pytestmark = pytest.mark.integration

TTL = 0.5


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    async with postgres_database("booking", "memory") as db:
        yield db


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def user() -> Principal:
    return Principal(user_id=uuid.uuid4(), role="customer", claims={})


async def attempt(
    db: Database, event_id: uuid.UUID, quantity: int, recently: AvailabilityCache | None
) -> tuple[str, Booking | None]:
    """One hold as the route makes it; the answer's name and the booking, if any."""
    try:
        async with UnitOfWork(db, single_statement=True) as uow:
            booking = await handlers.reserve_seats(
                uow,
                repository=BookingRepository,
                user=user(),
                event_id=event_id,
                quantity=quantity,
                hold_seconds=600,
                max_per_booking=10,
                max_held_per_user=10,
                recently=recently,
            )
            await uow.commit()
    except BookingError as exc:
        return type(exc).__name__, None
    return "reserved", booking


async def cancel(db: Database, booking: Booking | None) -> None:
    assert booking is not None
    owner = Principal(user_id=booking.user_id, role="customer", claims={})
    await run_in_unit_of_work(
        db,
        handlers.cancel_booking,
        repository=BookingRepository,
        booking_id=booking.id,
        actor=owner,
    )


async def held(db: Database, event_id: uuid.UUID) -> tuple[int, int]:
    async with db.read() as conn:
        row = (
            await conn.execute(
                sa.text(
                    "SELECT held, count(b.id) FROM inventory i LEFT JOIN bookings b "
                    "ON b.event_id = i.event_id AND b.status = 'pending' "
                    "WHERE i.event_id = :e GROUP BY held"
                ),
                {"e": event_id},
            )
        ).one()
    return row[0], row[1]


async def test_once_the_ttl_has_passed_memory_answers_what_a_fresh_read_answers(db) -> None:
    clock = Clock()
    memory = AvailabilityCache(TTL, clock=clock)
    event = event_created(capacity=3)
    eid = event.event_id
    await run_in_unit_of_work(
        db, lambda uow: handlers.apply_event_snapshot(event, uow, repository=BookingRepository)
    )

    async def both(quantity: int) -> tuple[str, str]:
        """The remembering replica's answer, then the reading replica's on the same state (a
        hold either makes is cancelled again, so both see the same seats)."""
        remembered, booking = await attempt(db, eid, quantity, memory)
        if booking is not None:
            await cancel(db, booking)
        fresh, booking = await attempt(db, eid, quantity, None)
        if booking is not None:
            await cancel(db, booking)
        return remembered, fresh

    def ttl_passes() -> None:
        clock.now += TTL + 0.01

    # seats left: both sell (memory now remembers 3 seats left)
    assert await both(2) == ("reserved", "reserved")
    assert await both(4) == ("NotEnoughSeats", "NotEnoughSeats")

    # the other replica takes every seat: memory still says 3 left, but it never sells from
    # memory: the hold goes to the database, which refuses it, and nothing was taken
    _, taken = await attempt(db, eid, 3, None)
    assert taken is not None
    assert await attempt(db, eid, 1, memory) == ("NotEnoughSeats", None)
    assert await held(db, eid) == (3, 1)
    ttl_passes()
    assert await both(1) == ("NotEnoughSeats", "NotEnoughSeats")

    # the seats come back: memory refuses for up to a TTL (the documented cost) ...
    await cancel(db, taken)
    assert await both(1) == ("NotEnoughSeats", "reserved")
    # ... but once the TTL has passed it answers as the reading replica does
    ttl_passes()
    assert await both(1) == ("reserved", "reserved")
    ttl_passes()
    assert await both(3) == ("reserved", "reserved")

    # the event is cancelled by a snapshot the remembering replica did not see
    cancelled = later(event, EventCancelled, 2)
    await run_in_unit_of_work(
        db, lambda uow: handlers.cancel_event_bookings(cancelled, uow, repository=BookingRepository)
    )
    assert (await attempt(db, eid, 1, memory))[0] == "EventNotOnSale"  # from the database
    ttl_passes()
    assert await both(1) == ("EventNotOnSale", "EventNotOnSale")
    # nothing was ever sold but by the database: every hold made is accounted for
    assert await held(db, eid) == (0, 0)
