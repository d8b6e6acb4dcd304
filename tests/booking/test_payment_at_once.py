"""A payment message for a pending booking in one statement (``confirm_pending`` /
``fail_pending``) stores and announces exactly what the unit-of-work handler does; a duplicate,
another status, or a change between its read and its write makes it do nothing at all, and the
unit-of-work handler then decides (PostgreSQL, real broker)."""

from __future__ import annotations

import uuid
from functools import partial

import pytest

from apps.booking import handlers
from apps.booking.adapters.repository import BookingRepository
from kit.consuming import consume_once
from apps.booking.entrypoints.messages import PAYMENT_CONFIRMED, PAYMENT_FAILED
from contracts.messages import PaymentFailed
from tests.booking.conftest import bound_queue, collect, event_created, feed, payment_for, rows
from tests.booking.test_saga import hold, seats

pytestmark = pytest.mark.integration

IGNORED = {
    "message_id",
    "occurred_at",
    "correlation_id",
    "causation_id",
    "booking_id",
    "user_id",
    "payment_id",
}


async def stored(booking, b: dict) -> tuple:
    (row,) = await rows(
        booking,
        "SELECT status, payment_id, cancellation_reason FROM bookings WHERE id = :i",
        i=b["id"],
    )
    (held,) = await rows(booking, "SELECT held FROM user_holds WHERE user_id = :u", u=b["user_id"])
    return row.status, row.payment_id, row.cancellation_reason, held[0]


async def marked(booking, consumer: str, message_id: uuid.UUID) -> int:
    return (
        await rows(
            booking,
            "SELECT count(*) FROM inbox WHERE consumer = :c AND message_id = :m",
            c=consumer,
            m=message_id,
        )
    )[0][0]


@pytest.mark.parametrize(
    ("consumer", "message", "at_once", "handler", "key"),
    [
        (
            PAYMENT_CONFIRMED.name,
            payment_for,
            partial(handlers.confirm_pending, repository=BookingRepository),
            partial(handlers.confirm_booking, repository=BookingRepository),
            "booking_confirmed",
        ),
        (
            PAYMENT_FAILED.name,
            partial(payment_for, cls=PaymentFailed),
            partial(handlers.fail_pending, repository=BookingRepository),
            partial(handlers.fail_booking, repository=BookingRepository),
            "booking_cancelled",
        ),
    ],
)
async def test_one_statement_path_stores_and_announces_what_the_handler_does(
    booking, client, amqp, consumer, message, at_once, handler, key
):
    queue = await bound_queue(amqp, key)
    event = event_created(capacity=10)
    await feed(booking, event)
    fast, slow = await hold(client, event, 2), await hold(client, event, 3)
    fast_msg, slow_msg = message(fast), message(slow)

    assert await at_once(booking.db, consumer, fast_msg) is True
    assert await consume_once(booking.db, consumer, slow_msg, handler) is True

    fast_row, slow_row = await stored(booking, fast), await stored(booking, slow)
    assert (
        fast_row[0] == slow_row[0] == ("confirmed" if key == "booking_confirmed" else "cancelled")
    )
    assert fast_row[2] == slow_row[2]
    assert fast_row[3] == slow_row[3] == 0  # the users' held seats released either way
    if key == "booking_confirmed":
        assert (fast_row[1], slow_row[1]) == (fast_msg.payment_id, slow_msg.payment_id)
        assert await seats(booking, event) == (10, 0, 5)
    else:
        assert await seats(booking, event) == (10, 0, 0)
    assert await marked(booking, consumer, fast_msg.message_id) == 1

    got = {body["booking_id"]: body for _, body in await collect(queue, 2)}
    a, b = got[fast["id"]], got[slow["id"]]
    assert a["quantity"] == 2 and b["quantity"] == 3
    assert a["causation_id"] == str(fast_msg.message_id)
    per_booking = {"quantity", "amount", "lines", "tickets"}
    assert {k: v for k, v in a.items() if k not in IGNORED | per_booking} == {
        k: v for k, v in b.items() if k not in IGNORED | per_booking
    }
    # both paths issue (and announce) one ticket per seat, stored with the confirmation
    for body, n in ((a, 2), (b, 3)):
        assert len(body.get("tickets", [])) == (n if key == "booking_confirmed" else 0)
        issued = await rows(
            booking, "SELECT id, secret FROM tickets WHERE booking_id = :b", b=body["booking_id"]
        )
        assert {(str(r.id), r.secret) for r in issued} == {
            (t["ticket_id"], t["secret"]) for t in body.get("tickets", [])
        }

    # redelivered: the one-statement path does nothing, the handler sees a duplicate
    assert await at_once(booking.db, consumer, fast_msg) is False
    assert await consume_once(booking.db, consumer, fast_msg, handler) is False
    assert await stored(booking, fast) == fast_row


async def test_a_change_between_the_read_and_the_write_writes_nothing(booking, client):
    event = event_created(capacity=10)
    await feed(booking, event)
    b = await hold(client, event, 2)
    first, second = payment_for(b), payment_for(b)
    async with booking.db.read() as conn:  # read while pending ...
        stale = await BookingRepository(conn).get(uuid.UUID(b["id"]))
    assert (
        await handlers.confirm_pending(
            booking.db, PAYMENT_CONFIRMED.name, first, repository=BookingRepository
        )
        is True
    )

    t = stale.confirm(second.payment_id, now=stale.updated_at)  # ... decided on the old state
    row = {
        "id": uuid.uuid4(),
        "routing_key": "booking_confirmed",
        "message_type": "booking_confirmed",
        "payload": {},
        "headers": {},
    }
    async with booking.db.read() as conn:
        applied = await BookingRepository(conn).save_once(
            t, consumer=PAYMENT_CONFIRMED.name, message_id=second.message_id, outbox_row=row
        )
    assert applied is False
    assert await marked(booking, PAYMENT_CONFIRMED.name, second.message_id) == 0
    assert (await rows(booking, "SELECT count(*) FROM outbox WHERE id = :i", i=row["id"]))[0][
        0
    ] == 0
    assert (await stored(booking, b))[1] == first.payment_id
    assert await seats(booking, event) == (10, 0, 2)
