"""Partial refunds: a payment is refunded in parts, each named by its refund id (the same id
twice is one refund), and never above what was captured, whatever runs at once. A refund that
would exceed it, or that the provider refuses, is not made and answered with ``refund_failed``.
Real PostgreSQL, RabbitMQ and the card-network simulator."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest
import sqlalchemy as sa

from apps.payments import handlers
from apps.payments.adapters.repository import PaymentRepository
from apps.payments.deps import provider_for
from apps.payments.entrypoints.messages import REFUND_REQUESTED
from kit.consuming import consume_once
from contracts.messages import PaymentRefunded, RefundFailed, RefundRequested
from tests.payments.conftest import (
    bound_queue,
    ledger_count,
    paid_booking,
    published,
    refused,
    scalar,
)
from tests.support.tokens import bearer, mint

pytestmark = pytest.mark.integration


def refund(created, payment_id, amount: str | None, refund_id=None, **over) -> RefundRequested:
    return RefundRequested(
        booking_id=created.booking_id,
        user_id=created.user_id,
        payment_id=payment_id,
        reason="organizer_refund",
        refund_id=refund_id or uuid.uuid4(),
        amount=None if amount is None else Decimal(amount),
        producer="booking",
        **over,
    )


async def handle(payments, *commands: RefundRequested) -> list[bool]:
    """Hand the commands to the refund subscriber's handler, all at the same time."""
    handler = handlers.refund_payment(provider_for(payments))
    return list(
        await asyncio.gather(
            *(consume_once(payments.db, REFUND_REQUESTED.name, c, handler) for c in commands)
        )
    )


async def messages(payments, queue, model):
    return [model.model_validate_json(m.body) for m in await published(payments, queue)]


async def refunded_amount(payments, payment_id) -> Decimal:
    return await scalar(
        payments, "SELECT refunded_amount FROM payments WHERE id = :p", p=payment_id
    )


async def refunded_by_provider(payments, charge_of_payment) -> Decimal:
    return await scalar(
        payments,
        "SELECT coalesce(sum(s.amount), 0) FROM simulator_charges s "
        "JOIN payments p ON p.provider_reference = s.charge_reference "
        "WHERE p.id = :p AND s.operation = 'refund'",
        p=charge_of_payment,
    )


async def test_a_payment_is_refunded_in_parts_then_the_rest(payments, client, amqp):
    refunded_q = await bound_queue(amqp, "payment_refunded")
    created, payment_id = await paid_booking(payments, client, amqp)  # 40.00 captured

    part = refund(created, payment_id, "15.50")
    assert await handle(payments, part) == [True]
    got = (
        await client.get(f"/payments/{payment_id}", headers=bearer(mint(created.user_id)))
    ).json()
    assert got["status"] == "succeeded" and got["refunded_amount"] == "15.50"

    rest = refund(created, payment_id, None)  # null: everything left
    assert await handle(payments, rest) == [True]

    first, second = await messages(payments, refunded_q, PaymentRefunded)
    assert (first.refund_id, first.amount, first.refunded_total) == (
        part.refund_id,
        Decimal("15.50"),
        Decimal("15.50"),
    )
    assert (second.refund_id, second.amount, second.refunded_total) == (
        rest.refund_id,
        Decimal("24.50"),
        Decimal("40.00"),
    )
    assert first.causation_id == part.message_id and first.reason == "organizer_refund"
    got = (
        await client.get(f"/payments/{payment_id}", headers=bearer(mint(created.user_id)))
    ).json()
    assert got["status"] == "refunded" and got["refunded_amount"] == "40.00"
    assert await refunded_by_provider(payments, payment_id) == Decimal("40.00")


async def test_the_same_refund_id_twice_is_one_refund(payments, client, amqp):
    refunded_q = await bound_queue(amqp, "payment_refunded")
    created, payment_id = await paid_booking(payments, client, amqp)
    refunds_before = await ledger_count(payments, "refund")
    command = refund(created, payment_id, "10.00")
    again = command.model_copy(update={"message_id": uuid.uuid4()})  # booking asked again

    assert await handle(payments, command, again) == [True, True]

    [message] = await messages(payments, refunded_q, PaymentRefunded)
    assert message.amount == Decimal("10.00")
    assert await refunded_amount(payments, payment_id) == Decimal("10.00")
    assert await ledger_count(payments, "refund") == refunds_before + 1


async def test_a_refund_above_what_is_left_is_not_made_and_is_answered(payments, client, amqp):
    failed_q = await bound_queue(amqp, "refund_failed")
    created, payment_id = await paid_booking(payments, client, amqp)
    before = refused("exceeds_remaining")
    await handle(payments, refund(created, payment_id, "30.00"))
    refunds_before = await ledger_count(payments, "refund")

    too_much = refund(created, payment_id, "10.01")  # 10.00 is left
    assert await handle(payments, too_much) == [True]

    [failed] = await messages(payments, failed_q, RefundFailed)
    assert (failed.refund_id, failed.amount, failed.failure_reason) == (
        too_much.refund_id,
        Decimal("10.01"),
        "exceeds_remaining",
    )
    assert failed.refunded_total == Decimal("30.00")
    assert refused("exceeds_remaining") == before + 1
    assert await refunded_amount(payments, payment_id) == Decimal("30.00")
    assert await ledger_count(payments, "refund") == refunds_before  # the provider never asked


async def test_a_refund_the_provider_refuses_gives_nothing_back_and_is_answered(
    payments, client, amqp
):
    failed_q = await bound_queue(amqp, "refund_failed")
    refunded_q = await bound_queue(amqp, "payment_refunded")
    created, payment_id = await paid_booking(payments, client, amqp)
    # The charge was refunded at the provider by other means: it refuses any more.
    charge = await scalar(
        payments, "SELECT provider_reference FROM payments WHERE id = :p", p=payment_id
    )
    await provider_for(payments).refund(
        charge_ref=charge, amount=Decimal("40.00"), idempotency_key=uuid.uuid4().hex
    )

    command = refund(created, payment_id, "5.00")
    assert await handle(payments, command) == [True]

    [failed] = await messages(payments, failed_q, RefundFailed)
    assert failed.refund_id == command.refund_id and failed.failure_reason == "exceeds_charge"
    assert failed.refunded_total == Decimal("0.00")
    assert await messages(payments, refunded_q, PaymentRefunded) == []
    assert await refunded_amount(payments, payment_id) == Decimal("0.00")
    assert (
        await scalar(payments, "SELECT status FROM refunds WHERE id = :r", r=command.refund_id)
        == "failed"
    )


async def test_simultaneous_refunds_never_exceed_what_was_captured(payments, client, amqp):
    """20 refunds of 7.00 of a 40.00 payment at once: five are made (35.00), the rest answered
    as failed; the payment, its refunds and the provider all agree."""
    refunded_q = await bound_queue(amqp, "payment_refunded")
    failed_q = await bound_queue(amqp, "refund_failed")
    created, payment_id = await paid_booking(payments, client, amqp)

    commands = [refund(created, payment_id, "7.00") for _ in range(20)]
    assert await handle(payments, *commands) == [True] * 20

    made = await messages(payments, refunded_q, PaymentRefunded)
    failed = await messages(payments, failed_q, RefundFailed)
    assert (len(made), len(failed)) == (5, 15)
    assert sorted(m.refunded_total for m in made) == [Decimal(7 * n) for n in range(1, 6)]
    assert await refunded_amount(payments, payment_id) == Decimal("35.00")
    assert await refunded_by_provider(payments, payment_id) == Decimal("35.00")
    assert await scalar(
        payments,
        "SELECT sum(amount) FROM refunds WHERE payment_id = :p AND status = 'succeeded'",
        p=payment_id,
    ) == Decimal("35.00")


async def test_the_refunded_total_is_taken_in_one_conditional_statement(payments, client, amqp):
    """The limit holds by itself, without the payment lock the subscriber takes first: 30
    transactions each adding 3.00 at once (on their own connections), 13 fit in 40.00."""
    created, payment_id = await paid_booking(payments, client, amqp)
    start = asyncio.Event()

    async def take() -> Decimal | None:
        async with payments.db.engine.begin() as conn:
            await start.wait()
            return await PaymentRepository(conn).take_refund(
                payment_id, Decimal("3.00"), now=created.occurred_at
            )

    tasks = [asyncio.create_task(take()) for _ in range(30)]
    await asyncio.sleep(0.2)
    start.set()
    totals = await asyncio.gather(*tasks)
    taken = sorted(t for t in totals if t is not None)
    assert taken == [Decimal(3 * n) for n in range(1, 14)]
    assert await refunded_amount(payments, payment_id) == Decimal("39.00")


async def test_the_database_refuses_a_refunded_total_above_the_amount(payments, client, amqp):
    _, payment_id = await paid_booking(payments, client, amqp)
    with pytest.raises(sa.exc.IntegrityError):
        async with payments.db.engine.begin() as conn:
            await conn.execute(
                sa.text("UPDATE payments SET refunded_amount = amount + 0.01 WHERE id = :p"),
                {"p": payment_id},
            )
