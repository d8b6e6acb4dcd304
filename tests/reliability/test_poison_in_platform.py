"""Poison messages in the running platform: each is parked in its queue's dead-letter queue
(after the bounded retries when the failure looks transient, at once when it can never
succeed) while bookings and payments keep flowing to their end."""

from __future__ import annotations

import asyncio
import json
import uuid

import aio_pika
import pytest

from contracts.topology import DELIVERY_LIMIT
from tests.support.messages import event_created
from tests.reliability.flows import DECLINED, Order, Sale
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def publish_to_queue(channel, queue: str, body: bytes, message_id: str) -> None:
    """Straight into one service's queue (default exchange), as a broken producer would."""
    await channel.default_exchange.publish(
        aio_pika.Message(
            body, content_type="application/json", delivery_mode=2, message_id=message_id
        ),
        routing_key=queue,
    )


async def parked(channel, dlq: str, message_ids: set[str]) -> dict[str, aio_pika.IncomingMessage]:
    """Take our messages out of ``dlq`` (others' are put back), by message id."""
    found: dict[str, aio_pika.IncomingMessage] = {}
    queue = await channel.declare_queue(dlq, passive=True)

    async def collect() -> set[str]:
        others = []
        while (msg := await queue.get(fail=False)) is not None:
            if msg.message_id in message_ids:
                found[msg.message_id] = msg
                await msg.ack()
            else:
                others.append(msg)  # held unacked until the queue is read through
        for msg in others:
            await msg.nack(requeue=True)
        return set(found)

    await eventually(collect, until=lambda got: got == message_ids, timeout=30, interval=0.2)
    return found


def death_reason(msg: aio_pika.IncomingMessage) -> str:
    deaths = (msg.headers or {}).get("x-death") or [{}]
    return str(deaths[0].get("reason", ""))


async def test_poison_messages_are_dead_lettered_while_bookings_flow(harness, api):
    connection = await aio_pika.connect_robust(harness.rabbitmq_url)
    channel = await connection.channel()
    try:
        sale = await Sale.open(api, harness, capacity=100)
        customers = await sale.customers(3)

        # 1. breaks the contract: rejected at once (no retry can fix a malformed payload)
        broken = str(uuid.uuid4())
        await publish_to_queue(
            channel,
            "booking.payment_confirmed",
            json.dumps({"message_type": "payment_confirmed", "amount": "lots"}).encode(),
            broken,
        )
        # 2. valid, but the handler refuses it for good: payment of a booking nobody announced
        unknown = str(uuid.uuid4())
        payment = {
            "message_id": unknown,
            "message_type": "payment_confirmed",
            "producer": "payments",
            "payment_id": str(uuid.uuid4()),
            "booking_id": str(uuid.uuid4()),
            "user_id": str(uuid.uuid4()),
            "event_id": sale.event_id,
            "amount": "10.00",
            "currency": "EUR",
            "provider_reference": "ch_poison",
        }
        await publish_to_queue(
            channel, "booking.payment_confirmed", json.dumps(payment).encode(), unknown
        )
        # 3. valid, but fails every time in a way that looks transient (PostgreSQL refuses the NUL
        #    in its title): retried up to the delivery limit, then parked
        nul = event_created(title="poison \x00 title")
        await publish_to_queue(
            channel, "analytics", nul.model_dump_json().encode(), str(nul.message_id)
        )

        # meanwhile, the sale goes on
        orders = [
            Order(token=t, user_id=u, card=DECLINED if i == 4 else "tok_visa")
            for i, (u, t) in enumerate(customers * 2)
        ]
        await asyncio.gather(*(sale.place(o) for o in orders))

        booking_dlq = await parked(channel, "booking.payment_confirmed.dlq", {broken, unknown})
        analytics_dlq = await parked(channel, "analytics.dlq", {str(nul.message_id)})
        await eventually(sale.settled, timeout=30, interval=0.3)
        results = await sale.audit(
            "poison messages beside a sale",
            dead_lettered_ours=len(booking_dlq) + len(analytics_dlq),
        )
    finally:
        await connection.close()

    assert {death_reason(m) for m in booking_dlq.values()} == {"rejected"}  # at once
    transient = analytics_dlq[str(nul.message_id)]
    assert death_reason(transient) == "delivery_limit", transient.headers
    # bounded: it was tried as often as the delivery limit allows, no more (the service logs each)
    log = (harness.platform.logs / "analytics.log").read_text(errors="replace")
    attempts = sum(
        1 for line in log.splitlines() if f"message {nul.message_id} failed (delivery" in line
    )
    assert DELIVERY_LIMIT <= attempts <= DELIVERY_LIMIT + 1, attempts
    assert all(not o.errors for o in orders), [o.errors for o in orders]
    for counts in results:
        assert (counts.lost, counts.duplicated) == (0, 0), counts
