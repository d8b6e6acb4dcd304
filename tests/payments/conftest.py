"""Fixtures and helpers of the payments tests: booking messages as booking would send them,
and looks into the payments database and the simulator's ledger."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aio_pika
import pytest
import sqlalchemy as sa

from apps.payments.bootstrap import build
from contracts.envelope import Envelope
from contracts.messages import BookingCancelled, BookingCreated, BookingExpired
from contracts.topology import DOMAIN_EXCHANGE
from tests.conftest import http_client
from tests.support.waiting import eventually


def booking_created(**over: Any) -> BookingCreated:
    fields: dict[str, Any] = dict(
        booking_id=uuid.uuid4(),
        event_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        quantity=2,
        amount=Decimal("40.00"),
        currency="EUR",
        expires_at=datetime.now(UTC) + timedelta(minutes=10),
        producer="booking",
    )
    fields.update(over)
    return BookingCreated(**fields)


def booking_ended(
    created: BookingCreated, kind: type[BookingExpired] | type[BookingCancelled], **over: Any
) -> BookingExpired | BookingCancelled:
    fields = created.model_dump(
        include={"booking_id", "event_id", "user_id", "quantity", "amount", "currency"}
    )
    if kind is BookingCancelled:
        fields["reason"] = "user_request"
    fields.update(over)
    return kind(producer="booking", correlation_id=created.correlation_id, **fields)


async def scalar(service: Any, sql: str, **params: Any) -> Any:
    async with service.db.engine.connect() as conn:
        return (await conn.execute(sa.text(sql), params)).scalar()


async def due_status(service: Any, booking_id: uuid.UUID) -> str | None:
    return await scalar(
        service, "SELECT status FROM booking_dues WHERE booking_id = :b", b=booking_id
    )


async def ledger_count(service: Any, operation: str = "charge") -> int:
    """Rows in the simulator's ledger: every charge (or refund) the "card network" made."""
    return await scalar(
        service, "SELECT count(*) FROM simulator_charges WHERE operation = :op", op=operation
    )


async def consumed(service: Any, queue: str, message_id: uuid.UUID) -> bool:
    return bool(
        await scalar(
            service,
            "SELECT count(*) FROM inbox WHERE consumer = :c AND message_id = :m",
            c=queue,
            m=message_id,
        )
    )


@pytest.fixture
async def payments(start_service):
    async with start_service(build) as svc:
        yield svc


@pytest.fixture
async def client(payments):
    async with http_client(payments) as c:
        yield c


async def publish(amqp: Any, message: Envelope) -> None:
    """Publish ``message`` to the domain exchange as its producer's outbox relay would."""
    exchange = await amqp.declare_exchange(DOMAIN_EXCHANGE.name, type="topic", durable=True)
    await exchange.publish(
        aio_pika.Message(
            message.model_dump_json().encode(),
            content_type="application/json",
            message_id=str(message.message_id),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        ),
        routing_key=message.routing_key,
    )


async def bound_queue(amqp: Any, routing_key: str) -> Any:
    """A private queue bound like a consumer's would be, to see what payments publishes."""
    exchange = await amqp.declare_exchange(DOMAIN_EXCHANGE.name, type="topic", durable=True)
    queue = await amqp.declare_queue(f"test.{uuid.uuid4().hex[:8]}", exclusive=True)
    await queue.bind(exchange, routing_key=routing_key)
    return queue


async def published(service: Any, queue: Any) -> list[aio_pika.IncomingMessage]:
    """Everything payments published into ``queue`` so far: waits until its outbox is empty
    (a row is deleted only once the broker confirmed it was routed), then drains the queue."""
    await eventually(service.relay.backlog, until=lambda b: b[0] == 0)
    out = []
    while (message := await queue.get(fail=False, no_ack=True)) is not None:
        out.append(message)
    return out


async def payable(service: Any, amqp: Any, **over: Any) -> BookingCreated:
    """A booking payments has learned about (through the real broker)."""
    created = booking_created(**over)
    await publish(amqp, created)
    await eventually(lambda: due_status(service, created.booking_id))
    return created
