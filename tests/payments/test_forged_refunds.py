"""Payments cross-checks a ``refund_requested`` against the payment it knows for the booking:
a command naming another user, or another payment, is refused (dead-lettered at once, counted in
``messages_refused_total``) and refunds nothing. The amount refunded is always the captured
payment's own (the command carries none), so a refund can never exceed what was taken."""

from __future__ import annotations

import uuid

import pytest

from apps.payments.entrypoints.messages import REFUND_REQUESTED
from contracts.messages import RefundRequested
from contracts.topology import dead_letter_queue_name
from tests.payments.conftest import ledger_count, paid_booking, publish, refused, scalar
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def queue_depth(amqp, name: str) -> int:
    underlay = await amqp.get_underlay_channel()
    return (await underlay.queue_declare(name, passive=True)).message_count or 0


async def payment_status(payments, payment_id) -> str:
    return await scalar(payments, "SELECT status FROM payments WHERE id = :p", p=payment_id)


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (lambda c, p: {"user_id": uuid.uuid4(), "payment_id": p}, "user_mismatch"),
        (lambda c, p: {"user_id": c.user_id, "payment_id": uuid.uuid4()}, "payment_mismatch"),
    ],
    ids=["another-user", "another-payment"],
)
async def test_a_forged_refund_request_is_dead_lettered_counted_and_refunds_nothing(
    payments, client, amqp, forge, reason
):
    created, payment_id = await paid_booking(payments, client, amqp)
    dlq = dead_letter_queue_name(REFUND_REQUESTED)
    before, parked_before = refused(reason), await queue_depth(amqp, dlq)
    refunds_before = await ledger_count(payments, "refund")

    forged = RefundRequested(
        booking_id=created.booking_id,
        reason="user_request",
        producer="booking",
        **forge(created, payment_id),
    )
    await publish(amqp, forged)

    await eventually(
        lambda: queue_depth(amqp, dlq), until=lambda n: n == parked_before + 1, timeout=15
    )
    assert refused(reason) == before + 1
    assert await payment_status(payments, payment_id) == "succeeded"
    assert await ledger_count(payments, "refund") == refunds_before
    parked = await (await amqp.declare_queue(dlq, passive=True)).get(timeout=5)
    await parked.ack()

    # the genuine command still refunds it
    await publish(
        amqp,
        RefundRequested(
            booking_id=created.booking_id,
            user_id=created.user_id,
            payment_id=payment_id,
            reason="user_request",
            producer="booking",
        ),
    )
    await eventually(lambda: payment_status(payments, payment_id), until=lambda s: s == "refunded")


async def test_a_refund_request_for_a_booking_never_paid_is_counted(payments, amqp):
    before = refused("unknown_payment")
    dlq = dead_letter_queue_name(REFUND_REQUESTED)
    parked_before = await queue_depth(amqp, dlq)
    await publish(
        amqp,
        RefundRequested(
            booking_id=uuid.uuid4(), user_id=uuid.uuid4(), reason="user_request", producer="booking"
        ),
    )
    await eventually(
        lambda: queue_depth(amqp, dlq), until=lambda n: n == parked_before + 1, timeout=15
    )
    assert refused("unknown_payment") == before + 1
    parked = await (await amqp.declare_queue(dlq, passive=True)).get(timeout=5)
    await parked.ack()
