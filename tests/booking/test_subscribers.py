"""Each booking subscriber with FastStream's in-memory TestRabbitBroker (the routing is the
contract's: exchange + routing key), against the real database."""

from __future__ import annotations


import pytest
from faststream.rabbit import TestRabbitBroker

from apps.booking.bootstrap import build
from contracts.messages import EventCancelled, EventUpdated, PaymentFailed
from contracts.topology import DOMAIN_EXCHANGE
from tests.booking.conftest import event_created, later, payment_for, reserved, rows

pytestmark = pytest.mark.integration


@pytest.fixture
async def service():
    svc = build(outbox_relay=False, booking_sweep_interval_seconds=0)
    await svc.db.prepare()
    try:
        yield svc
    finally:
        await svc.db.dispose()


async def send(broker, msg) -> None:
    await broker.publish(msg, exchange=DOMAIN_EXCHANGE, routing_key=msg.routing_key)


async def inventory(svc, event) -> tuple:
    return tuple(
        (
            await rows(
                svc,
                "SELECT capacity, held, sold, status FROM inventory WHERE event_id = :e",
                e=event.event_id,
            )
        )[0]
    )


async def outbox_keys(svc, booking_id) -> list[str]:
    return [
        r[0]
        for r in await rows(
            svc,
            "SELECT routing_key FROM outbox WHERE payload->>'booking_id' = :b ORDER BY created_at",
            b=str(booking_id),
        )
    ]


async def test_event_created_and_updated_subscribers_build_inventory(service):
    subs = service.subscribers
    async with TestRabbitBroker(service.broker) as broker:
        event = event_created(capacity=8)
        await send(broker, event)
        subs["event_created"].mock.assert_called_once()
        assert await inventory(service, event) == (8, 0, 0, "scheduled")

        await send(broker, later(event, EventUpdated, 2, capacity=12))
        subs["event_updated"].mock.assert_called_once()
        assert await inventory(service, event) == (12, 0, 0, "scheduled")


async def test_payment_subscribers_confirm_and_cancel(service):
    subs = service.subscribers
    async with TestRabbitBroker(service.broker) as broker:
        event = event_created(capacity=8)
        await send(broker, event)
        to_pay, to_fail = await reserved(service, event, 2), await reserved(service, event, 3)

        await send(broker, payment_for(to_pay))
        await send(broker, payment_for(to_fail, PaymentFailed))

        subs["payment_confirmed"].mock.assert_called_once()
        subs["payment_failed"].mock.assert_called_once()
        assert await inventory(service, event) == (8, 0, 2, "scheduled")
        assert await outbox_keys(service, to_pay.id) == ["booking_created", "booking_confirmed"]
        assert await outbox_keys(service, to_fail.id) == ["booking_created", "booking_cancelled"]


async def test_event_cancelled_subscriber_cancels_bookings(service):
    subs = service.subscribers
    async with TestRabbitBroker(service.broker) as broker:
        event = event_created(capacity=8)
        await send(broker, event)
        b = await reserved(service, event, 2)
        msg = later(event, EventCancelled, 2)

        await send(broker, msg)
        await send(broker, msg)  # the same message again: nothing more happens

        assert subs["event_cancelled"].mock.call_count == 2
        assert await inventory(service, event) == (8, 0, 0, "cancelled")
        assert await outbox_keys(service, b.id) == ["booking_created", "booking_cancelled"]
