"""The analytics subscriber under FastStream's TestRabbitBroker (in-memory broker, real DB)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from faststream.rabbit import TestRabbitBroker

from apps.analytics.adapters.tables import bookings, events, payments
from apps.analytics.bootstrap import build
from kit.inbox import INBOX
from contracts.envelope import Envelope
from contracts.topology import ANALYTICS_EXCHANGE, ANALYTICS_FACTS
from tests.analytics.factories import EventFacts
from tests.support.db import inbox_marks

pytestmark = pytest.mark.integration  # needs PostgreSQL (the broker is in memory)


@pytest.fixture(scope="module")
async def analytics(start_service):
    async with start_service(build, connect_broker=False, outbox_relay=False) as svc:
        yield svc


def the_subscriber(service: Any) -> Any:
    (subscriber,) = service.broker.subscribers  # exactly one: the analytics channel
    (call,) = subscriber.calls
    return call.handler


async def row(service: Any, table: sa.Table, **where: Any) -> Any:
    stmt = sa.select(table).where(*(table.c[k] == v for k, v in where.items()))
    async with service.db.engine.connect() as conn:
        return (await conn.execute(stmt)).first()


async def inbox_has(service: Any, message_id: uuid.UUID) -> bool:
    return await row(service, INBOX, consumer="analytics", message_id=message_id) is not None


def one_fact_of_each_type() -> dict[str, Envelope]:
    event = EventFacts()
    b = event.booking(quantity=2)
    facts = [
        event.created(),
        event.updated(),
        event.cancelled(),
        b.created(),
        b.confirmed(),
        b.cancelled(),
        b.expired(),
        b.paid(),
        b.payment_failed(),
        b.refunded(),
        b.checked_in(),
    ]
    return {f.message_type: f for f in facts}  # type: ignore[attr-defined]


FACTS = one_fact_of_each_type()


def test_the_examples_cover_every_analytics_fact():
    assert {m.model_fields["message_type"].default for m in ANALYTICS_FACTS} == set(FACTS)


@pytest.mark.parametrize("message_type", sorted(FACTS))
async def test_each_fact_type_reaches_the_one_subscriber_and_is_recorded(analytics, message_type):
    fact = FACTS[message_type].model_copy(update={"message_id": uuid.uuid4()})
    handler = the_subscriber(analytics)
    async with TestRabbitBroker(analytics.broker) as br:
        await br.publish(fact, exchange=ANALYTICS_EXCHANGE)
        handler.mock.assert_called_once_with(json.loads(fact.model_dump_json()))

    assert await inbox_has(analytics, fact.message_id)
    if message_type == "ticket_checked_in":
        pass  # not counted yet: only marked as seen (above)
    elif message_type.startswith("event_"):
        stored = await row(analytics, events, event_id=fact.event_id)
        assert (stored.organizer_id, stored.title, stored.currency) == (
            fact.organizer_id,
            fact.title,
            "EUR",
        )
    elif message_type.startswith("booking_"):
        stored = await row(analytics, bookings, booking_id=fact.booking_id)
        transition = {
            "booking_created": "created_at",
            "booking_confirmed": "confirmed_at",
            "booking_cancelled": "cancelled_at",
            "booking_expired": "expired_at",
        }
        assert getattr(stored, transition[message_type]) == fact.occurred_at
        assert (stored.event_id, stored.quantity, str(stored.amount)) == (fact.event_id, 2, "40.00")
    else:
        stored = await row(analytics, payments, payment_id=fact.payment_id)
        transition = {
            "payment_confirmed": "succeeded_at",
            "payment_failed": "failed_at",
            "payment_refunded": "refunded_at",
        }
        assert getattr(stored, transition[message_type]) == fact.occurred_at
        assert (stored.booking_id, stored.event_id, stored.currency) == (
            fact.booking_id,
            fact.event_id,
            "EUR",
        )


def bad_payloads() -> list[Any]:
    good = EventFacts().booking().created().model_dump(mode="json")
    return [
        pytest.param(good | {"message_id": str(uuid.uuid4()), "quantity": 0}, id="breaks-contract"),
        pytest.param(
            good | {"message_id": str(uuid.uuid4()), "message_type": "user_registered"},
            id="not-an-analytics-fact",
        ),
        pytest.param(
            {k: v for k, v in good.items() if k != "message_type"}
            | {"message_id": str(uuid.uuid4())},
            id="no-discriminator",
        ),
    ]


@pytest.mark.parametrize("payload", bad_payloads())
async def test_invalid_payload_is_rejected_and_records_nothing(analytics, payload, caplog):
    handler = the_subscriber(analytics)
    async with TestRabbitBroker(analytics.broker) as br:
        await br.publish(payload, exchange=ANALYTICS_EXCHANGE)
        assert handler.mock.call_count >= 1  # it did reach the subscriber...
    # ...which rejected it (dead-lettered on a real broker) before recording anything
    assert any("dead-lettering" in r.getMessage() for r in caplog.records)
    assert not await inbox_has(analytics, uuid.UUID(payload["message_id"]))
    assert await row(analytics, bookings, booking_id=uuid.UUID(payload["booking_id"])) is None


async def test_a_redelivered_message_is_recorded_once(analytics):
    b = EventFacts().booking()
    created = b.created()
    async with TestRabbitBroker(analytics.broker) as br:
        await br.publish(created, exchange=ANALYTICS_EXCHANGE)
        # same message_id, later timestamp: if it were applied, created_at would not move anyway,
        # so prove the skip through the inbox and a second, distinct fact instead
        await br.publish(created, exchange=ANALYTICS_EXCHANGE)
    assert await inbox_marks(analytics, created.message_id) == 1
    assert (await row(analytics, bookings, booking_id=b.booking_id)).status == "pending"


async def test_confirmation_before_creation_keeps_both_transitions(analytics):
    b = EventFacts().booking(quantity=3)
    created = b.created()  # happened first...
    confirmed = b.confirmed()
    async with TestRabbitBroker(analytics.broker) as br:
        await br.publish(confirmed, exchange=ANALYTICS_EXCHANGE)  # ...but arrives last
        await br.publish(created, exchange=ANALYTICS_EXCHANGE)
    stored = await row(analytics, bookings, booking_id=b.booking_id)
    assert stored.status == "confirmed"
    assert (stored.created_at, stored.confirmed_at) == (created.occurred_at, confirmed.occurred_at)


async def test_an_older_event_snapshot_does_not_overwrite_a_newer_one(analytics):
    event = EventFacts(title="Old title")
    async with TestRabbitBroker(analytics.broker) as br:
        await br.publish(event.updated(version=2, title="New title"), exchange=ANALYTICS_EXCHANGE)
        await br.publish(event.created(), exchange=ANALYTICS_EXCHANGE)  # version 1, late
    stored = await row(analytics, events, event_id=event.event_id)
    assert (stored.title, stored.version) == ("New title", 2)


def test_asyncapi_shows_every_variant_of_the_analytics_union():
    spec = json.loads(build().asyncapi.to_specification().to_json())
    assert list(spec["channels"]) == ["analytics"]
    channel = spec["channels"]["analytics"]
    assert channel["bindings"]["amqp"]["queue"]["name"] == "analytics"
    exchange = channel["x-exchange"]
    assert (exchange["name"], exchange["type"], exchange["durable"]) == (
        "analytics",
        "fanout",
        True,
    )
    assert "counted once" in channel["description"]
    assert list(spec["operations"]) == ["analytics_receive_analytics"]
    (message,) = spec["components"]["messages"].values()
    assert message["name"] == "AnalyticsMessage"
    payload = spec["components"]["schemas"][message["payload"]["$ref"].split("/")[-1]]
    assert payload["discriminator"] == "message_type"
    variants = {ref["$ref"].split("/")[-1] for ref in payload["oneOf"]}
    assert variants == {m.__name__ for m in ANALYTICS_FACTS}
    for name in variants:
        schema = spec["components"]["schemas"][name]
        assert "message_type" in schema["properties"] and schema["description"]
