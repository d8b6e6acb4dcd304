"""The booking saga driven by real messages on the real broker: payments, event changes,
expiry, late and duplicated deliveries."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from apps.booking.entrypoints.sweeper import sweep_once
from contracts.messages import (
    BookingCancelled,
    BookingConfirmed,
    EventCancelled,
    EventUpdated,
    PaymentFailed,
    RefundRequested,
)
from tests.booking.conftest import (
    book_body,
    bound_queue,
    collect,
    event_created,
    feed,
    later,
    outbox_drained,
    payment_for,
    publish,
    rows,
)
from tests.support.tokens import bearer, mint
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

OUTCOMES = ("booking_confirmed", "booking_cancelled", "booking_expired", "refund_requested")


async def status_of(service, booking_id) -> str:
    return (await rows(service, "SELECT status FROM bookings WHERE id = :i", i=booking_id))[0][0]


async def until_status(service, booking_id, status: str) -> None:
    await eventually(lambda: status_of(service, booking_id), until=lambda s: s == status)


async def seats(service, event) -> tuple[int, int, int]:
    (row,) = await rows(
        service, "SELECT capacity, held, sold FROM inventory WHERE event_id = :e", e=event.event_id
    )
    return tuple(row)


async def hold(client, event, quantity=1, user=None) -> dict:
    resp = await client.post(
        "/booking/create", json=book_body(event, quantity), headers=bearer(mint(user))
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


async def test_payment_confirms_and_duplicates_change_nothing(booking, client, amqp):
    queue = await bound_queue(amqp, *OUTCOMES)
    event = event_created(capacity=5)
    await feed(booking, event)
    b = await hold(client, event, 2)
    payment = payment_for(b)

    await publish(amqp, payment)
    await until_status(booking, b["id"], "confirmed")
    resent, late_failure = (
        payment_for(b, payment_id=payment.payment_id),
        payment_for(b, PaymentFailed),
    )
    await publish(amqp, payment)  # redelivered: same message id
    await publish(amqp, resent)  # re-sent: new message id
    await publish(amqp, late_failure)  # a late failure of an earlier attempt

    [(key, body)] = await collect(queue, 1)
    assert key == "booking_confirmed"
    assert BookingConfirmed.model_validate(body).payment_id == payment.payment_id
    # the late messages were consumed (their inbox rows exist) and changed nothing
    ids = ",".join(f"'{m.message_id}'" for m in (payment, resent, late_failure))
    await eventually(
        lambda: rows(booking, f"SELECT count(*) FROM inbox WHERE message_id IN ({ids})"),
        until=lambda r: r[0][0] == 3,
    )
    assert await seats(booking, event) == (5, 0, 2)
    assert await status_of(booking, b["id"]) == "confirmed"
    await eventually(lambda: outbox_drained(booking))  # anything emitted has been published
    assert await queue.get(no_ack=True, fail=False) is None


async def test_failed_payment_cancels_and_releases_seats(booking, client, amqp):
    queue = await bound_queue(amqp, *OUTCOMES)
    event = event_created(capacity=5)
    await feed(booking, event)
    b = await hold(client, event, 3)

    await publish(amqp, payment_for(b, PaymentFailed))
    await until_status(booking, b["id"], "cancelled")
    assert await seats(booking, event) == (5, 0, 0)
    [(key, body)] = await collect(queue, 1)
    msg = BookingCancelled.model_validate(body)
    assert (key, msg.reason, msg.refund_due) == ("booking_cancelled", "payment_failed", False)

    # a payment that still arrives for the cancelled booking is refunded, once
    late = payment_for(b)
    await publish(amqp, late)
    await publish(amqp, payment_for(b, payment_id=late.payment_id))
    [(key, body)] = await collect(queue, 1)
    refund = RefundRequested.model_validate(body)
    assert (key, refund.payment_id, refund.reason) == (
        "refund_requested",
        late.payment_id,
        "payment_failed",
    )
    assert await seats(booking, event) == (5, 0, 0)


async def test_user_cancelling_a_paid_booking_gets_a_refund(booking, client, amqp):
    queue = await bound_queue(amqp, "booking_cancelled", "refund_requested")
    event = event_created(capacity=5)
    await feed(booking, event)
    user = uuid.uuid4()
    b = await hold(client, event, 2, user)
    payment = payment_for(b)
    await publish(amqp, payment)
    await until_status(booking, b["id"], "confirmed")

    resp = await client.post(f"/booking/{b['id']}/cancel", headers=bearer(mint(user)))
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    assert await seats(booking, event) == (5, 0, 0)
    got = dict(await collect(queue, 2))
    assert RefundRequested.model_validate(got["refund_requested"]).payment_id == payment.payment_id
    assert BookingCancelled.model_validate(got["booking_cancelled"]).refund_due is True


async def test_cancelled_event_cancels_every_booking_and_refunds_paid_ones(booking, client, amqp):
    queue = await bound_queue(amqp, "booking_cancelled", "refund_requested")
    event = event_created(capacity=10)
    await feed(booking, event)
    pending = await hold(client, event, 2)
    confirmed = await hold(client, event, 3)
    payment = payment_for(confirmed)
    await publish(amqp, payment)
    await until_status(booking, confirmed["id"], "confirmed")

    cancel = later(event, EventCancelled, 2, reason="venue flooded")
    await publish(amqp, cancel)
    await publish(amqp, cancel)  # duplicate
    await publish(amqp, later(event, EventUpdated, 1, capacity=50))  # stale, arrives late

    got = await collect(queue, 3)
    assert await status_of(booking, pending["id"]) == "cancelled"
    assert await status_of(booking, confirmed["id"]) == "cancelled"
    cancelled = {
        b["booking_id"]: BookingCancelled.model_validate(b)
        for k, b in got
        if k == "booking_cancelled"
    }
    assert cancelled[pending["id"]].refund_due is False
    assert cancelled[confirmed["id"]].refund_due is True
    assert {c.reason for c in cancelled.values()} == {"event_cancelled"}
    [refund] = [RefundRequested.model_validate(b) for k, b in got if k == "refund_requested"]
    assert refund.payment_id == payment.payment_id and refund.reason == "event_cancelled"
    assert refund.correlation_id == cancel.correlation_id
    assert await seats(booking, event) == (10, 0, 0)
    resp = await client.post("/booking/create", json=book_body(event), headers=bearer(mint()))
    assert resp.status_code == 409


async def test_event_snapshots_apply_in_version_order_and_never_below_seats_out(booking, client):
    event = event_created(capacity=10, price="10.00")
    await feed(booking, event)
    await hold(client, event, 4)

    await feed(booking, later(event, EventUpdated, 3, capacity=2, price="30.00"))
    assert await seats(booking, event) == (4, 4, 0)  # clamped to held + sold
    await feed(booking, later(event, EventUpdated, 2, capacity=100))  # older: ignored
    await feed(
        booking, event_created(**{**event.model_dump(exclude={"message_id"}), "capacity": 100})
    )
    assert await seats(booking, event) == (4, 4, 0)
    resp = await client.post("/booking/create", json=book_body(event), headers=bearer(mint()))
    assert resp.status_code == 409

    await feed(booking, later(event, EventUpdated, 4, capacity=6, price="30.00"))
    b = await hold(client, event, 2)
    assert b["amount"] == "60.00"
    assert await seats(booking, event) == (6, 6, 0)


async def swept_hold(service, client, amqp) -> tuple[Any, Any, dict]:
    """A queue of the saga's outcomes, an event of 3 seats and a hold of 2 of them that the
    sweeper expired (the service's holds lapse at once)."""
    queue = await bound_queue(amqp, *OUTCOMES)
    event = event_created(capacity=3)
    await feed(service, event)
    b = await hold(client, event, 2)
    assert await sweep_once(service) == 1
    return queue, event, b


async def test_paid_after_expiry_is_confirmed_when_seats_can_be_retaken(
    short_holds, short_client, amqp
):
    queue, event, b = await swept_hold(short_holds, short_client, amqp)
    assert await seats(short_holds, event) == (3, 0, 0)

    await publish(amqp, payment_for(b))
    await until_status(short_holds, b["id"], "confirmed")
    assert await seats(short_holds, event) == (3, 0, 2)
    got = await collect(queue, 2)
    assert [k for k, _ in got] == ["booking_expired", "booking_confirmed"]


async def test_paid_after_expiry_is_refunded_when_seats_are_gone(short_holds, short_client, amqp):
    queue, event, b = await swept_hold(short_holds, short_client, amqp)
    other = await hold(short_client, event, 3)  # somebody else takes every seat meanwhile
    payment = payment_for(b)

    await publish(amqp, payment)
    await until_status(short_holds, b["id"], "cancelled")
    assert await seats(short_holds, event) == (3, 3, 0)
    got = await collect(queue, 3)
    by_key = {k: body for k, body in got}
    assert [k for k, _ in got][0] == "booking_expired"
    cancelled = BookingCancelled.model_validate(by_key["booking_cancelled"])
    assert (cancelled.reason, cancelled.refund_due) == ("paid_after_expiry", True)
    refund = RefundRequested.model_validate(by_key["refund_requested"])
    assert (refund.payment_id, refund.reason) == (payment.payment_id, "paid_after_expiry")
    assert await status_of(short_holds, other["id"]) == "pending"
