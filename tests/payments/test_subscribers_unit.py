"""The payments subscribers under FastStream's TestRabbitBroker (in-memory broker, real
PostgreSQL): typed payloads in, use cases run once, messages out through the outbox relay."""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal

import pytest
from faststream.rabbit import TestRabbitBroker

from apps.payments.bootstrap import build
from apps.payments.entrypoints.messages import (
    BOOKING_CANCELLED,
    BOOKING_CREATED,
    BOOKING_EXPIRED,
    REFUND_REQUESTED,
)
from contracts.messages import (
    BookingCancelled,
    BookingCreated,
    BookingExpired,
    PaymentConfirmed,
    PaymentRefunded,
    RefundRequested,
)
from contracts.topology import DOMAIN_EXCHANGE
from tests.conftest import http_client
from tests.payments.conftest import (
    booking_created,
    booking_ended,
    consumed,
    due_status,
    owner,
    pay,
    scalar,
)
from tests.support.tokens import bearer, mint


@pytest.fixture
async def offline(start_service):
    """The payments service on its real database, its broker replaced by TestRabbitBroker."""
    async with start_service(build, connect_broker=False, outbox_relay=False) as svc:
        async with TestRabbitBroker(svc.broker) as broker:
            yield svc, broker


def subscriber_of(service, queue):
    """The subscriber function consuming ``queue`` (its ``.mock`` records what it received)."""
    subscriber = next(s for s in service.broker.subscribers if s.queue.name == queue.name)
    [call] = subscriber.calls
    return call.handler


async def send(broker, message) -> None:
    await broker.publish(message, exchange=DOMAIN_EXCHANGE, routing_key=message.routing_key)


def published_for(publisher, model, booking_id):
    """What the relay handed to ``publisher`` about one booking, as typed messages."""
    messages = [model.model_validate(call.args[0]) for call in publisher.mock.call_args_list]
    return [m for m in messages if m.booking_id == booking_id]


async def test_booking_created_records_what_is_due_once(offline):
    svc, broker = offline
    created = booking_created(amount=Decimal("12.50"), currency="USD")
    await send(broker, created)
    await send(broker, created)  # redelivered

    handler = subscriber_of(svc, BOOKING_CREATED)
    assert handler.mock.call_count == 2
    assert BookingCreated.model_validate(handler.mock.call_args.args[0]) == created
    assert await due_status(svc, created.booking_id) == "open"
    amount, currency, user_id = (
        (
            await scalar(
                svc,
                "SELECT json_build_array(amount::text, currency, user_id)::text FROM booking_dues "
                "WHERE booking_id = :b",
                b=created.booking_id,
            )
        )
        .strip("[]")
        .replace('"', "")
        .split(", ")
    )
    assert (Decimal(amount), currency, uuid.UUID(user_id)) == (
        Decimal("12.50"),
        "USD",
        created.user_id,
    )
    assert await consumed(svc, BOOKING_CREATED.name, created.message_id)


@pytest.mark.parametrize("ending", [BookingExpired, BookingCancelled])
async def test_booking_that_ended_first_stays_unpayable_when_its_creation_arrives(offline, ending):
    svc, broker = offline
    created = booking_created()
    ended = booking_ended(created, ending)
    await send(broker, ended)
    await send(broker, created)
    queue = BOOKING_EXPIRED if ending is BookingExpired else BOOKING_CANCELLED
    assert ending.model_validate(subscriber_of(svc, queue).mock.call_args.args[0]) == ended
    assert await due_status(svc, created.booking_id) == (
        "expired" if ending is BookingExpired else "cancelled"
    )


async def test_late_expiry_leaves_a_paid_booking_paid_and_cancellation_closes_it(offline):
    svc, broker = offline
    created = booking_created()
    await send(broker, created)
    async with http_client(svc) as client:
        resp = await client.post(
            "/payments/process", json=pay(created.booking_id), headers=owner(created)
        )
    assert resp.status_code == 201 and resp.json()["status"] == "succeeded"
    await send(broker, booking_ended(created, BookingExpired))
    assert await due_status(svc, created.booking_id) == "paid"
    await send(broker, booking_ended(created, BookingCancelled))
    assert await due_status(svc, created.booking_id) == "cancelled"


async def test_refund_requested_refunds_once_and_the_relay_publishes_payment_refunded(offline):
    svc, broker = offline
    created = booking_created()
    await send(broker, created)
    async with http_client(svc) as client:
        payment = (
            await client.post(
                "/payments/process",
                headers=bearer(mint(created.user_id)),
                json={
                    "booking_id": str(created.booking_id),
                    "payment_method": {"type": "card", "token": "tok_visa"},
                },
            )
        ).json()
    command = RefundRequested(
        booking_id=created.booking_id,
        user_id=created.user_id,
        reason="paid_after_expiry",
        producer="booking",
    )
    await send(broker, command)
    await send(broker, command)  # redelivered
    await send(broker, command.model_copy(update={"message_id": uuid.uuid4()}))  # asked again
    assert subscriber_of(svc, REFUND_REQUESTED).mock.call_count == 3

    await svc.relay.relay_once()
    [confirmed] = published_for(
        svc.publishers["payment_confirmed"], PaymentConfirmed, created.booking_id
    )
    [refunded] = published_for(
        svc.publishers["payment_refunded"], PaymentRefunded, created.booking_id
    )
    assert confirmed.payment_id == refunded.payment_id == uuid.UUID(payment["id"])
    assert refunded.amount == Decimal("40.00") and refunded.reason == "paid_after_expiry"
    assert refunded.causation_id == command.message_id


@pytest.mark.parametrize(
    ("queue", "payload"),
    [
        (BOOKING_CREATED, booking_created().model_dump(mode="json", exclude={"amount"})),
        (BOOKING_CREATED, booking_created().model_dump(mode="json") | {"amount": "-1.00"}),
        (BOOKING_CREATED, booking_created().model_dump(mode="json") | {"amount": "1.001"}),
        (
            BOOKING_EXPIRED,
            booking_ended(booking_created(), BookingExpired).model_dump(mode="json")
            | {"currency": "EUX"},
        ),
        (
            BOOKING_CANCELLED,
            booking_ended(booking_created(), BookingCancelled).model_dump(mode="json")
            | {"reason": "because"},
        ),
        (
            REFUND_REQUESTED,
            {
                "message_id": str(uuid.uuid4()),
                "booking_id": "nope",
                "user_id": str(uuid.uuid4()),
                "reason": "user_request",
            },
        ),
    ],
    ids=["no-amount", "negative-amount", "sub-cent-amount", "bad-currency", "bad-reason", "bad-id"],
)
async def test_payload_breaking_the_contract_is_rejected_and_changes_nothing(
    offline, caplog, queue, payload
):
    svc, broker = offline
    caplog.set_level(logging.ERROR, logger="kit.broker")
    await broker.publish(payload, exchange=DOMAIN_EXCHANGE, routing_key=queue.routing_key)
    assert any("dead-lettering" in r.getMessage() for r in caplog.records)
    assert not await consumed(svc, queue.name, uuid.UUID(payload["message_id"]))
    if "booking_id" in payload and payload["booking_id"] != "nope":
        assert await due_status(svc, uuid.UUID(payload["booking_id"])) is None


async def test_refund_of_a_booking_never_paid_is_dead_lettered(offline, caplog):
    svc, broker = offline
    caplog.set_level(logging.ERROR, logger="kit.broker")
    command = RefundRequested(booking_id=uuid.uuid4(), user_id=uuid.uuid4(), reason="user_request")
    await send(broker, command)
    assert any("dead-lettering" in r.getMessage() for r in caplog.records)
    assert not await consumed(svc, REFUND_REQUESTED.name, command.message_id)
