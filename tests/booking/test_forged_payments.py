"""Booking cross-checks every payment message against the booking it names, so one compromised
service cannot mint paid bookings: a ``payment_confirmed`` (or ``payment_failed``) whose amount,
currency or user differs from the booking's, or that names a booking booking never made, is
refused on every path (the one-statement fast path and the unit-of-work handler), dead-lettered
at once and counted in ``messages_refused_total``."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
import sqlalchemy as sa

from apps.booking import handlers
from apps.booking.adapters.repository import BookingRepository
from apps.booking.entrypoints.messages import PAYMENT_CONFIRMED
from kit.broker import PermanentFailure
from kit.metrics import REGISTRY
from kit.uow import UnitOfWork
from contracts.messages import PaymentFailed
from contracts.topology import dead_letter_queue_name
from tests.booking.conftest import event_created, feed, payment_for, publish, reserved, rows
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def refused(reason: str, channel: str = "payment_confirmed") -> float:
    return (
        REGISTRY.get_sample_value(
            "messages_refused_total", {"service": "booking", "channel": channel, "reason": reason}
        )
        or 0.0
    )


async def status_of(svc, booking_id) -> str:
    return (await rows(svc, "SELECT status FROM bookings WHERE id = :b", b=booking_id))[0][0]


async def queue_depth(amqp, name: str) -> int:
    underlay = await amqp.get_underlay_channel()
    return (await underlay.queue_declare(name, passive=True)).message_count or 0


async def test_a_payment_confirmed_with_the_wrong_amount_is_dead_lettered_and_counted(
    booking, amqp
):
    event = event_created(capacity=10, price="20.00")
    await feed(booking, event)
    b = await reserved(booking, event)
    dlq = dead_letter_queue_name(PAYMENT_CONFIRMED)
    before, parked_before = refused("amount_mismatch"), await queue_depth(amqp, dlq)

    forged = payment_for(b, amount=Decimal("0.01"))
    await publish(amqp, forged)

    await eventually(
        lambda: queue_depth(amqp, dlq), until=lambda n: n == parked_before + 1, timeout=15
    )
    assert await status_of(booking, b.id) == "pending"
    assert refused("amount_mismatch") == before + 1
    keys = await rows(
        booking, "SELECT routing_key FROM outbox WHERE payload->>'booking_id' = :b", b=str(b.id)
    )
    assert {k for (k,) in keys} <= {"booking_created"}
    queue = await amqp.declare_queue(dlq, passive=True)
    parked = await queue.get(timeout=5)
    assert str(forged.message_id).encode() in parked.body or parked.message_id == str(
        forged.message_id
    )
    await parked.ack()

    # the genuine payment still confirms it
    await publish(amqp, payment_for(b))
    await eventually(lambda: status_of(booking, b.id), until=lambda s: s == "confirmed")


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"amount": Decimal("39.99")}, "amount_mismatch"),
        ({"currency": "USD"}, "currency_mismatch"),
        ({"user_id": uuid.uuid4()}, "user_mismatch"),
    ],
)
async def test_the_one_statement_path_refuses_a_payment_that_does_not_match(booking, over, reason):
    event = event_created(capacity=10, price="20.00")
    await feed(booking, event)
    b = await reserved(booking, event)
    before = refused(reason)
    with pytest.raises(PermanentFailure):
        await booking.subscribers["payment_confirmed"](payment_for(b, **over))
    assert await status_of(booking, b.id) == "pending"
    assert refused(reason) == before + 1


async def test_the_unit_of_work_handler_refuses_a_payment_that_does_not_match(booking):
    """The handler every other case (and SQLite) goes through checks the same."""
    event = event_created(capacity=10, price="20.00")
    await feed(booking, event)
    b = await reserved(booking, event)
    before = refused("amount_mismatch")
    with pytest.raises(PermanentFailure):
        async with UnitOfWork(booking.db) as uow:
            await handlers.confirm_booking(
                payment_for(b, amount=Decimal("1.00")), uow, repository=BookingRepository
            )
            await uow.commit()
    assert await status_of(booking, b.id) == "pending"
    assert refused("amount_mismatch") == before + 1


async def test_a_forged_late_payment_for_an_expired_booking_is_refused(booking):
    """An expired hold goes through the handler (no fast path): re-taking its seats on a forged
    payment would sell them for nothing."""
    event = event_created(capacity=10, price="20.00")
    await feed(booking, event)
    b = await reserved(booking, event)
    async with booking.db.engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE bookings SET expires_at = now() - interval '1 minute' WHERE id = :b"),
            {"b": b.id},
        )
    async with UnitOfWork(booking.db) as uow:
        assert (
            await handlers.expire_overdue_holds(uow, repository=BookingRepository, batch_size=100)
            >= 1
        )
        await uow.commit()
    assert await status_of(booking, b.id) == "expired"
    before = refused("currency_mismatch")
    with pytest.raises(PermanentFailure):
        await booking.subscribers["payment_confirmed"](payment_for(b, currency="GBP"))
    assert await status_of(booking, b.id) == "expired"
    assert refused("currency_mismatch") == before + 1
    sold = await rows(booking, "SELECT sold FROM inventory WHERE event_id = :e", e=event.event_id)
    assert sold == [(0,)]


async def test_a_payment_for_a_booking_never_made_is_refused_and_counted(booking):
    stranger = type(
        "B",
        (),
        {
            "id": uuid.uuid4(),
            "user_id": uuid.uuid4(),
            "amount": Decimal("20.00"),
            "currency": "EUR",
        },
    )()
    before = refused("unknown_booking")
    with pytest.raises(PermanentFailure):
        await booking.subscribers["payment_confirmed"](payment_for(stranger))
    assert refused("unknown_booking") == before + 1


async def test_a_payment_failed_for_another_user_leaves_the_booking_alone(booking):
    event = event_created(capacity=10, price="20.00")
    await feed(booking, event)
    b = await reserved(booking, event)
    before = refused("user_mismatch", channel="payment_failed")
    with pytest.raises(PermanentFailure):
        await booking.subscribers["payment_failed"](
            payment_for(b, PaymentFailed, user_id=uuid.uuid4())
        )
    assert await status_of(booking, b.id) == "pending"
    assert refused("user_mismatch", channel="payment_failed") == before + 1
