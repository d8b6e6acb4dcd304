"""Fixtures and helpers of the payments tests: booking messages as booking would send them,
and looks into the payments database and the simulator's ledger."""

from __future__ import annotations

import uuid
from typing import Any

import aio_pika
import pytest

from apps.payments.bootstrap import build
from contracts.messages import BookingCancelled, BookingCreated, BookingExpired
from tests.conftest import http_client, service_fixture
from tests.support.bus import bound_queue as bound_queue, publish
from kit.metrics import REGISTRY
from tests.support.db import scalar
from tests.support.messages import booking_created as booking_created
from tests.support.tokens import bearer, mint
from tests.support.waiting import eventually


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


payments = service_fixture(build)


@pytest.fixture
async def client(payments):
    async with http_client(payments) as c:
        yield c


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


def pay(booking_id: uuid.UUID, token: str = "tok_visa") -> dict[str, object]:
    """A ``POST /payments/process`` body: pay the booking by card (a simulator token)."""
    return {"booking_id": str(booking_id), "payment_method": {"type": "card", "token": token}}


def owner(created: BookingCreated) -> dict[str, str]:
    """The booking's user's credentials."""
    return bearer(mint(created.user_id))


async def paid_booking(service: Any, client: Any, amqp: Any) -> tuple[BookingCreated, uuid.UUID]:
    """A booking payments knows, paid by its user with a good card: it and its payment's id."""
    created = await payable(service, amqp)
    resp = await client.post(
        "/payments/process", json=pay(created.booking_id), headers=owner(created)
    )
    assert resp.status_code in (200, 201), resp.text
    return created, uuid.UUID(resp.json()["id"])


def refused(reason: str) -> float:
    """How many ``refund_requested`` commands payments refused for ``reason`` so far."""
    return (
        REGISTRY.get_sample_value(
            "messages_refused_total",
            {"service": "payments", "channel": "refund_requested", "reason": reason},
        )
        or 0.0
    )
