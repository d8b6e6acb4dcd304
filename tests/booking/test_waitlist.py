"""The waiting list, through its use cases, on PostgreSQL and on SQLite (the embedded mode):
joining only while the seats cannot be booked, seats that come back (a cancelled hold, an expired
hold, a failed payment, a refunded paid booking, a capacity increase) going to the queue's head
in the transaction that frees them, strict FIFO, offers that lapse and pass on, leaving; and a
race of cancellations and holds on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from apps.booking import handlers, waitlist
from apps.booking.adapters.repository import BookingRepository
from apps.booking.domain import Booking, BookingError
from contracts.messages import EventUpdated, PaymentFailed, TicketType
from kit.db import Database
from kit.problems import BadRequest
from kit.security import Principal
from kit.uow import UnitOfWork
from tests.booking.conftest import event_created, later, on_both_databases, payment_for
from tests.support.db import postgres_database
from tests.support.messages import voucher_for

pytestmark = pytest.mark.integration


db = on_both_databases("waitlist")


def person() -> Principal:
    return Principal(uuid.uuid4(), "customer", {})


class World:
    def __init__(self, db: Database, repository: type) -> None:
        self.db, self.repository = db, repository

    async def uow(self, use_case: Any, **kw: Any) -> Any:
        async with UnitOfWork(self.db) as uow:
            result = await use_case(uow, **kw)
            await uow.commit()
            return result

    async def consume(self, handler: Any, msg: Any) -> None:
        async def run(uow: UnitOfWork) -> None:
            await handler(msg, uow, repository=self.repository)

        await self.uow(run)

    async def hold(
        self, event: Any, quantity: int, who: Principal | None = None, **kw: Any
    ) -> Booking:
        return await self.uow(
            handlers.reserve_seats,
            repository=self.repository,
            user=who or person(),
            event_id=event.event_id,
            quantity=kw.pop("quantity", quantity) if "lines" not in kw else None,
            hold_seconds=kw.pop("hold_seconds", 600),
            max_per_booking=10,
            max_held_per_user=20,
            **kw,
        )

    async def join(self, event: Any, quantity: int, who: Principal | None = None, **kw: Any) -> Any:
        return await self.uow(
            waitlist.join_waitlist,
            user=who or person(),
            event_id=event.event_id,
            ticket_type_id=kw.get("ticket_type_id"),
            quantity=quantity,
            hold_seconds=kw.get("hold_seconds", 600),
            max_per_booking=10,
            max_held_per_user=kw.get("max_held_per_user", 20),
        )

    async def cancel(self, booking: Booking) -> None:
        await self.uow(
            handlers.cancel_booking,
            repository=self.repository,
            booking_id=booking.id,
            actor=Principal(booking.user_id, "customer", {}),
        )

    async def entries(self, who: Principal) -> dict[uuid.UUID, Any]:
        entries, _ = await waitlist.list_waitlist(self.db, user=who, limit=100)
        return {e.id: e for e in entries}

    async def one(self, sql: str, **params: Any) -> Any:
        async with self.db.engine.connect() as conn:
            return (await conn.execute(sa.text(sql), params)).one()

    async def seats(self, event: Any) -> tuple[int, int, int]:
        r = await self.one(
            "SELECT capacity, held, sold FROM inventory WHERE event_id = :e",
            e=event.event_id.hex if not self.db.is_postgres else event.event_id,
        )
        return tuple(r)  # type: ignore[return-value]

    async def outbox(self, routing_key: str) -> list[dict[str, Any]]:
        import json

        async with self.db.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.text("SELECT payload FROM outbox WHERE routing_key = :k"), {"k": routing_key}
                )
            ).all()
        return [r.payload if isinstance(r.payload, dict) else json.loads(r.payload) for r in rows]


@pytest.fixture
async def world(db: tuple[Database, type]) -> World:
    return World(*db)


async def sold_out(world: World, capacity: int = 4) -> tuple[Any, list[Booking]]:
    event = event_created(capacity=capacity, price="10.00")
    await world.consume(handlers.apply_event_snapshot, event)
    held = [await world.hold(event, 2) for _ in range(capacity // 2)]
    return event, held


async def test_joining_is_refused_while_the_seats_can_be_booked(world: World) -> None:
    event = event_created(capacity=4, price="10.00")
    await world.consume(handlers.apply_event_snapshot, event)
    with pytest.raises(waitlist.SeatsAvailable):
        await world.join(event, 4)
    await world.hold(event, 3)
    with pytest.raises(waitlist.SeatsAvailable):
        await world.join(event, 1)
    entry = await world.join(event, 2)  # one left: two cannot be booked
    assert (entry.status, entry.position, entry.quantity) == ("waiting", 1, 2)
    with pytest.raises(BookingError) as unknown:
        await world.join(event_created(), 1)
    assert unknown.value.code == "event-not-found"


async def test_a_cancelled_hold_goes_to_the_head_of_the_queue_in_the_same_transaction(
    world: World,
) -> None:
    event, (a, b) = await sold_out(world)
    first, second = person(), person()
    e1 = await world.join(event, 2, first)
    e2 = await world.join(event, 1, second)
    assert (e1.position, e2.position) == (1, 2)

    await world.cancel(a)

    got = (await world.entries(first))[e1.id]
    assert got.status == "offered" and got.booking_id is not None
    # the seats were never free: held by the offer as the cancellation committed
    assert await world.seats(event) == (4, 4, 0)
    offer = await world.outbox("waitlist_offered")
    assert [(o["entry_id"], o["quantity"], o["amount"]) for o in offer] == [
        (str(e1.id), 2, "20.00")
    ]
    created = [
        m for m in await world.outbox("booking_created") if m["booking_id"] == str(got.booking_id)
    ]
    assert len(created) == 1 and created[0]["user_id"] == str(first.user_id)
    assert (await world.entries(second))[e2.id].position == 1  # next in line now

    # the offered booking is paid like any other
    offered = await world.uow(lambda uow: world.repository(uow.conn).get(got.booking_id))
    await world.consume(handlers.confirm_booking, payment_for(offered))
    assert (await world.entries(first))[e1.id].booking_status == "confirmed"
    assert await world.seats(event) == (4, 2, 2)


async def test_strict_fifo_a_large_head_is_not_jumped(world: World) -> None:
    event, (a, b) = await sold_out(world)
    big, small = person(), person()
    e_big = await world.join(event, 3, big)
    e_small = await world.join(event, 1, small)
    await world.cancel(a)  # 2 free: the head wants 3 and waits; the one behind waits too
    assert (await world.entries(big))[e_big.id].status == "waiting"
    assert (await world.entries(small))[e_small.id].status == "waiting"
    assert await world.seats(event) == (4, 2, 0)
    await world.cancel(b)  # 4 free: the head gets 3, then the next gets 1
    assert (await world.entries(big))[e_big.id].status == "offered"
    assert (await world.entries(small))[e_small.id].status == "offered"
    assert await world.seats(event) == (4, 4, 0)


async def test_an_unpaid_offer_lapses_and_passes_on(world: World) -> None:
    event, (a, b) = await sold_out(world)
    first, second = person(), person()
    e1 = await world.join(event, 2, first, hold_seconds=0)  # its offer lapses at once
    e2 = await world.join(event, 2, second)
    await world.consume(handlers.fail_booking, payment_for(a, PaymentFailed))
    assert (await world.entries(first))[e1.id].status == "offered"
    if not world.db.is_postgres:
        await asyncio.sleep(1.1)  # SQLite's now() counts whole seconds
    expired = await world.uow(
        handlers.expire_overdue_holds, repository=world.repository, batch_size=10
    )
    assert expired == 1
    mine = (await world.entries(first))[e1.id]
    assert mine.booking_status == "expired"
    theirs = (await world.entries(second))[e2.id]
    assert theirs.status == "offered"
    assert await world.seats(event) == (4, 4, 0)
    # the lapsed entry is never offered again
    await world.cancel(b)
    assert (await world.entries(first))[e1.id].booking_status == "expired"


async def test_a_capacity_increase_and_a_refund_serve_the_queue(world: World) -> None:
    event, (a, b) = await sold_out(world)
    waiting = person()
    entry = await world.join(event, 3, waiting)
    await world.consume(handlers.apply_event_snapshot, later(event, EventUpdated, 2, capacity=5))
    assert (await world.entries(waiting))[entry.id].status == "waiting"  # one free, 3 wanted
    await world.consume(handlers.confirm_booking, payment_for(a))
    admin = Principal(uuid.uuid4(), "admin", {})
    await world.uow(
        handlers.refund_booking, repository=world.repository, booking_id=a.id, actor=admin
    )
    assert (await world.entries(waiting))[entry.id].status == "offered"
    assert await world.seats(event) == (5, 5, 0)


async def test_a_typed_entry_gets_its_type_and_leaving_declines_an_offer(world: World) -> None:
    vip, std = uuid.uuid4(), uuid.uuid4()
    event = event_created(
        capacity=10,
        price="10.00",
        ticket_types=[
            TicketType(ticket_type_id=std, name="Standard", price=Decimal("10.00"), capacity=8),
            TicketType(ticket_type_id=vip, name="VIP", price=Decimal("50.00"), capacity=2),
        ],
    )
    await world.consume(handlers.apply_event_snapshot, event)
    vip_hold = await world.hold(event, 0, lines=[(vip, 2)])
    with pytest.raises(waitlist.SeatsAvailable):
        await world.join(event, 2, ticket_type_id=std)
    fan, next_fan = person(), person()
    e1 = await world.join(event, 1, fan, ticket_type_id=vip)
    e2 = await world.join(event, 1, next_fan, ticket_type_id=vip)
    await world.cancel(vip_hold)
    offer = (await world.entries(fan))[e1.id]
    assert offer.status == "offered"
    got = await world.uow(lambda uow: world.repository(uow.conn).get(offer.booking_id))
    assert [(ln.ticket_type_id, ln.quantity, ln.unit_price) for ln in got.lines] == [
        (vip, 1, Decimal("50.00"))
    ]
    # the second VIP seat went to the next entry, not to the public
    assert (await world.entries(next_fan))[e2.id].status == "offered"
    # leaving with an open offer declines it; its seat is free again (nobody else waits)
    await world.uow(handlers.leave_waitlist, repository=world.repository, user=fan, entry_id=e1.id)
    assert e1.id not in await world.entries(fan)
    assert (
        await world.one(
            "SELECT status FROM bookings WHERE id = :b",
            b=offer.booking_id if world.db.is_postgres else offer.booking_id.hex,
        )
    ).status == "cancelled"
    with pytest.raises(waitlist.WaitlistEntryNotFound):
        await world.uow(
            handlers.leave_waitlist, repository=world.repository, user=fan, entry_id=e2.id
        )


async def test_when_the_head_leaves_the_next_entry_that_fits_is_served(world: World) -> None:
    event, (a, b) = await sold_out(world)
    big, small = person(), person()
    e_big = await world.join(event, 3, big)
    e_small = await world.join(event, 1, small)
    await world.cancel(a)  # 2 free: the head (3) waits, and so does the entry behind it
    assert (await world.entries(small))[e_small.id].status == "waiting"
    await world.uow(
        handlers.leave_waitlist, repository=world.repository, user=big, entry_id=e_big.id
    )
    assert (await world.entries(small))[e_small.id].status == "offered"
    assert await world.seats(event) == (4, 3, 0)


async def test_an_entry_larger_than_the_event_holds_nobody_up(world: World) -> None:
    event, (a, b) = await sold_out(world)
    huge, small = person(), person()
    await world.join(event, 5, huge)  # more than the event's 4 seats
    e_small = await world.join(event, 2, small)
    await world.cancel(a)
    assert (await world.entries(small))[e_small.id].status == "offered"


async def held_by(world: World, who: Principal) -> int:
    row = await world.one(
        "SELECT coalesce(sum(held), 0) AS held FROM user_holds WHERE user_id = :u",
        u=who.user_id if world.db.is_postgres else who.user_id.hex,
    )
    return int(row.held)


async def test_an_offer_never_takes_its_user_past_the_hold_cap(world: World) -> None:
    """A user who holds too many seats to take an offer is passed over (the seats go to the
    entries behind) and keeps their place: served once they hold fewer and seats come back."""
    elsewhere = event_created(capacity=10, price="10.00")
    await world.consume(handlers.apply_event_snapshot, elsewhere)
    fan, next_one = person(), person()
    theirs = await world.hold(elsewhere, 3, fan)
    event, (a, _b) = await sold_out(world)
    e_fan = await world.join(event, 2, fan, max_held_per_user=4)  # 3 held + 2 > 4
    e_next = await world.join(event, 1, next_one, max_held_per_user=4)

    await world.cancel(a)  # 2 free: the fan is passed over, the one behind is served

    assert (await world.entries(fan))[e_fan.id].status == "waiting"
    assert (await world.entries(fan))[e_fan.id].position == 1  # still first in line
    offer = (await world.entries(next_one))[e_next.id]
    assert offer.status == "offered"
    assert await held_by(world, fan) == 3
    assert await world.seats(event) == (4, 3, 0)  # the seat nobody waiting can take is free

    # the fan lets their other hold go; when seats come back here, they are served
    await world.cancel(theirs)
    assert (await world.entries(fan))[e_fan.id].status == "waiting"  # 1 free, 2 wanted
    await world.uow(
        handlers.leave_waitlist, repository=world.repository, user=next_one, entry_id=e_next.id
    )
    assert (await world.entries(fan))[e_fan.id].status == "offered"
    assert await held_by(world, fan) == 2
    assert await world.seats(event) == (4, 4, 0)


async def test_joining_for_more_seats_than_one_user_may_hold_is_refused(world: World) -> None:
    event, _held = await sold_out(world)
    with pytest.raises(BookingError) as over:
        await world.join(event, 4, max_held_per_user=3)  # its offer could never be made
    assert over.value.code == "hold-limit-reached"
    assert (await world.join(event, 3, max_held_per_user=3)).status == "waiting"


async def test_the_sweeper_serves_a_passed_over_entry_once_its_user_holds_fewer(
    world: World,
) -> None:
    elsewhere = event_created(capacity=10, price="10.00")
    await world.consume(handlers.apply_event_snapshot, elsewhere)
    fan = person()
    theirs = await world.hold(elsewhere, 3, fan)
    event, (a, _b) = await sold_out(world)
    entry = await world.join(event, 2, fan, max_held_per_user=4)
    await world.cancel(a)  # 2 free, but the fan holds 3 of at most 4
    assert (await world.entries(fan))[entry.id].status == "waiting"
    assert await world.seats(event) == (4, 2, 0)

    # paid elsewhere: no longer held. Nothing came back at this event, the sweeper's safety
    # net serves the entry from the seats still free
    await world.consume(handlers.confirm_booking, payment_for(theirs))
    served = await world.uow(waitlist.serve_stuck_waitlists, repository=world.repository, limit=10)
    assert served == 1
    assert (await world.entries(fan))[entry.id].status == "offered"
    assert await held_by(world, fan) == 2


async def test_offers_of_two_events_at_once_keep_their_user_within_the_hold_cap() -> None:
    """Real PostgreSQL: seats come back at two events at the same moment, one user waiting at
    both; the cap (3) lets only one of the two offers (2 seats each) through."""
    async with postgres_database("booking", "waitlist_cap_race") as db:
        world = World(db, BookingRepository)
        fan = person()
        holds, entries = [], []
        for _ in range(2):
            event, held = await sold_out(world, capacity=2)
            holds += held
            entries.append(await world.join(event, 2, fan, max_held_per_user=3))
        await asyncio.gather(*(world.cancel(b) for b in holds))
        offers = [(await world.entries(fan))[e.id].status for e in entries]
        assert sorted(offers) == ["offered", "waiting"]
        assert await held_by(world, fan) == 2


async def test_concurrent_cancellations_and_holds_never_leak_or_double_offer_seats() -> None:
    """Real PostgreSQL, at once: five holds cancelled while twenty others try to book single
    seats. Every freed seat goes to the waiting list (the public gets none), each entry once."""
    async with postgres_database("booking", "waitlist_race") as db:
        world = World(db, BookingRepository)
        event, held = await sold_out(world, capacity=10)
        waiting = [person() for _ in range(5)]
        entries = [await world.join(event, 2, who) for who in waiting]

        async def try_to_book() -> Any:
            try:
                return await world.hold(event, 1)
            except BookingError:
                return None

        results = await asyncio.gather(
            *(world.cancel(b) for b in held),
            *(try_to_book() for _ in range(20)),
            return_exceptions=True,
        )
        assert not [r for r in results if isinstance(r, Exception)], results
        assert [r for r in results[len(held) :] if r is not None] == []  # the public got none
        offers = [(await world.entries(who))[e.id] for who, e in zip(waiting, entries, strict=True)]
        assert [o.status for o in offers] == ["offered"] * 5
        assert len({o.booking_id for o in offers}) == 5
        assert await world.seats(event) == (10, 10, 0)


async def test_a_voucher_use_given_back_is_not_counted_as_a_free_seat(world: World) -> None:
    """An expired hold gives back its seat and its voucher's use in the same queued moves; only
    the seat may go to the queue (the use once counted as one more free seat)."""

    event = event_created(capacity=2, price="10.00")
    await world.consume(handlers.apply_event_snapshot, event)
    await world.consume(handlers.apply_voucher_snapshot, voucher_for(event))
    await world.hold(event, 1, voucher_code="SAVE10", hold_seconds=0)  # lapses at once
    await world.hold(event, 1)
    head = person()
    entry = await world.join(event, 2, head)  # needs both seats: one is still held
    if not world.db.is_postgres:
        await asyncio.sleep(1.1)  # SQLite's now() counts whole seconds
    expired = await world.uow(
        handlers.expire_overdue_holds, repository=world.repository, batch_size=10
    )
    assert expired == 1
    assert (await world.entries(head))[entry.id].status == "waiting"
    assert await world.seats(event) == (2, 1, 0)


async def test_a_users_entries_are_listed_oldest_first_a_page_at_a_time(world: World) -> None:
    fan, other = person(), person()
    joined = []
    for _ in range(5):
        event, _held = await sold_out(world, capacity=2)
        joined.append((await world.join(event, 1, fan)).id)
        await world.join(event, 1, other)  # never in the fan's pages
    seen, cursor, pages = [], None, 0
    while True:
        page, cursor = await waitlist.list_waitlist(world.db, user=fan, limit=2, cursor=cursor)
        pages += 1
        assert len(page) <= 2
        seen += [e.id for e in page]
        if cursor is None:
            break
    assert seen == joined and pages == 3
    # garbage, ["1e99"], ["-1"], [2**70] (past a bigint: must not reach the database)
    for forged in (
        "not-a-cursor",
        "WyIxZTk5Il0",
        "WyItMSJd",
        "WyIxMTgwNTkxNjIwNzE3NDExMzAzNDI0Il0",
    ):
        with pytest.raises(BadRequest) as bad:
            await waitlist.list_waitlist(world.db, user=fan, limit=2, cursor=forged)
        assert bad.value.code == "invalid-cursor"


async def test_a_user_has_one_entry_in_play_per_event(world: World) -> None:
    """Queueing again would be offered a second booking's seats (past the per-user cap):
    refused while the first entry waits or its offer is open, allowed once it is over."""
    event, held = await sold_out(world, capacity=4)
    fan = person()
    first = await world.join(event, 2, fan)
    with pytest.raises(waitlist.AlreadyWaiting) as again:
        await world.join(event, 1, fan)
    assert again.value.code == "already-on-waitlist"
    await world.join(event, 2)  # somebody else may

    await world.cancel(held[0])  # the fan's entry is offered: still in play
    assert (await world.entries(fan))[first.id].status == "offered"
    with pytest.raises(waitlist.AlreadyWaiting):
        await world.join(event, 1, fan)

    # declined (left): the fan may queue again
    await world.uow(
        handlers.leave_waitlist, repository=world.repository, user=fan, entry_id=first.id
    )
    assert (await world.join(event, 1, fan)).status == "waiting"


async def test_simultaneous_joins_of_one_user_make_one_entry() -> None:
    async with postgres_database("booking", "waitlist_one_each") as db:
        world = World(db, BookingRepository)
        event, _held = await sold_out(world, capacity=4)
        fan = person()

        async def join() -> Any:
            try:
                return await world.join(event, 1, fan)
            except waitlist.AlreadyWaiting:
                return None

        joined = await asyncio.gather(*(join() for _ in range(8)))
        assert len([e for e in joined if e is not None]) == 1
        assert len(await world.entries(fan)) == 1
