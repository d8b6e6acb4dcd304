"""The on-sale hot path: one-statement holds and the recently-seen availability that refuses
sold-out attempts without the database. Real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from apps.booking.adapters.availability import Availability, AvailabilityCache
from apps.booking.deps import BookingDeps, availability_of
from apps.booking.bootstrap import build
from kit.uow import UnitOfWork
from tests.booking.conftest import book_body, event_created, feed, rows
from tests.conftest import http_client
from tests.support.tokens import bearer, mint

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def inventory(service, event) -> tuple[int, int]:
    [(held, sold)] = await rows(
        service, "SELECT held, sold FROM inventory WHERE event_id = :e", e=event.event_id
    )
    return held, sold


async def test_a_price_change_after_the_read_books_at_the_new_price(booking, client):
    event = event_created(capacity=5, price="20.00")
    await feed(booking, event)
    # this replica "saw" an older price a moment ago; the statement notices and reads again
    availability_of(booking).put(
        event.event_id, Availability("scheduled", 5, Decimal("1.00"), "EUR")
    )

    resp = await client.post("/booking/create", json=book_body(event, 2), headers=bearer(mint()))

    assert resp.status_code == 201, resp.text
    assert resp.json()["amount"] == "40.00"
    assert await inventory(booking, event) == (2, 0)


async def test_sold_out_seen_recently_is_refused_until_the_ttl_passes(start_service):
    """Seats another replica puts back on sale are refused here for at most the TTL, then sold;
    seats this replica puts back are on sale at once."""
    clock = Clock()
    async with start_service(build) as one, start_service(build) as two:
        BookingDeps.of(one).availability = AvailabilityCache(0.5, clock=clock)
        event = event_created(capacity=1)
        await feed(one, event)
        holder, latecomer = bearer(mint()), bearer(mint())
        async with http_client(one) as c1, http_client(two) as c2:
            first = await c1.post("/booking/create", json=book_body(event), headers=holder)
            assert first.status_code == 201
            assert (
                await c1.post("/booking/create", json=book_body(event), headers=latecomer)
            ).status_code == 409
            # the other replica cancels: replica one still refuses from memory...
            assert (
                await c2.post(f"/booking/{first.json()['id']}/cancel", headers=holder)
            ).status_code == 200
            assert await inventory(one, event) == (0, 0)
            refused = await c1.post("/booking/create", json=book_body(event), headers=latecomer)
            assert refused.status_code == 409 and refused.json()["available"] == 0
            # ...until the TTL has passed
            clock.now += 0.5
            again = await c1.post("/booking/create", json=book_body(event), headers=latecomer)
            assert again.status_code == 201, again.text

            # a cancellation on replica one itself is seen at once
            assert (
                await c1.post(f"/booking/{again.json()['id']}/cancel", headers=latecomer)
            ).status_code == 200
            assert (
                await c1.post("/booking/create", json=book_body(event), headers=holder)
            ).status_code == 201
        assert await inventory(one, event) == (1, 0)


async def test_with_an_idempotency_key_a_refusal_is_decided_on_a_fresh_read(booking, client):
    """A stored refusal is replayed for 48 h: it must not come from a stale memory."""
    event = event_created(capacity=3)
    await feed(booking, event)
    availability_of(booking).put(
        event.event_id, Availability("scheduled", 0, Decimal("20.00"), "EUR")
    )
    token = bearer(mint())

    without_key = await client.post("/booking/create", json=book_body(event), headers=token)
    with_key = await client.post(
        "/booking/create",
        json=book_body(event),
        headers={**token, "Idempotency-Key": str(uuid.uuid4())},
    )

    assert without_key.status_code == 409  # refused from memory
    assert with_key.status_code == 201, with_key.text
    assert await inventory(booking, event) == (1, 0)


async def test_a_single_statement_unit_of_work_refuses_staged_messages(booking):
    uow = UnitOfWork(booking.db, single_statement=True)
    async with uow:
        assert uow.autocommit
        with pytest.raises(RuntimeError):
            uow.publish(event_created())


async def test_seat_moves_reach_the_counters_only_at_commit(booking, client):
    """A confirmation's held -> sold is applied by the deferred trigger when the transaction
    commits (the hot row is not locked before), and not at all if it rolls back."""
    import sqlalchemy as sa

    from apps.booking.adapters.repository import BookingRepository

    event = event_created(capacity=5)
    await feed(booking, event)
    resp = await client.post("/booking/create", json=book_body(event, 2), headers=bearer(mint()))
    assert resp.status_code == 201
    repo_booking = uuid.UUID(resp.json()["id"])

    for commit in (False, True):
        async with UnitOfWork(booking.db) as uow:
            repo = BookingRepository(uow.conn)
            b = await repo.get(repo_booking, for_update=True)
            t = b.confirm(uuid.uuid4(), now=b.created_at)
            await repo.save([t])
            await repo.move_seats([t])
            # not yet on the row: nobody else's lock wait starts before COMMIT
            held, sold = (
                await uow.conn.execute(
                    sa.text("SELECT held, sold FROM inventory WHERE event_id = :e"),
                    {"e": event.event_id},
                )
            ).one()
            assert (held, sold) == (2, 0)
            if commit:
                await uow.commit()
        assert await inventory(booking, event) == ((0, 2) if commit else (2, 0))
    assert await rows(booking, "SELECT count(*) FROM seat_moves") == [(0,)]
