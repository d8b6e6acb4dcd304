"""Subscribers and publishers under FastStream's TestRabbitBroker (in-memory broker, real DB)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
import sqlalchemy as sa
from faststream.rabbit import TestRabbitBroker

from apps.events.bootstrap import build as build_events
from contracts.messages import EventCreated
from contracts.topology import DOMAIN_EXCHANGE
from tests.conftest import http_client
from tests.support import probe
from tests.support.api_bodies import event_body
from tests.support.messages import event_created
from tests.support.tokens import bearer, mint


@pytest.fixture
async def probe_service():
    service = probe.build()
    await service.db.prepare()
    async with service.db.engine.begin() as conn:
        await conn.run_sync(probe.metadata.create_all)
    yield service
    await service.db.dispose()


async def effect_count(service, message_id: uuid.UUID) -> int:
    async with service.db.engine.connect() as conn:
        return (
            await conn.execute(
                sa.select(sa.func.count())
                .select_from(probe.effects)
                .where(probe.effects.c.message_id == message_id)
            )
        ).scalar_one()


async def test_subscriber_gets_typed_payload_and_records_effect_once(probe_service):
    msg = event_created(title="ok")
    async with TestRabbitBroker(probe_service.broker) as br:
        await br.publish(msg, exchange=DOMAIN_EXCHANGE, routing_key="event_created")
        await br.publish(msg, exchange=DOMAIN_EXCHANGE, routing_key="event_created")  # duplicate
        handler = probe.handlers[id(probe_service)]
        assert handler.mock.call_count == 2
        received = EventCreated.model_validate(handler.mock.call_args.args[0])
        assert received == msg
    assert await effect_count(probe_service, msg.message_id) == 1


async def test_subscriber_rejects_payload_that_breaks_the_contract(probe_service, caplog):
    message = event_created(title="bad-contract").model_dump(mode="json")
    bad = message | {"capacity": -5, "currency": "?"}
    async with TestRabbitBroker(probe_service.broker) as br:
        await br.publish(bad, exchange=DOMAIN_EXCHANGE, routing_key="event_created")
    # the handler body never ran, and the delivery policy rejected it (to the dead-letter queue)
    assert probe.attempts.get("bad-contract", 0) == 0
    assert any("dead-lettering" in r.getMessage() for r in caplog.records)
    assert await effect_count(probe_service, uuid.UUID(bad["message_id"])) == 0


async def test_relay_publishes_through_the_declared_publisher(start_service):
    async with start_service(build_events, connect_broker=False, outbox_relay=False) as events:
        async with TestRabbitBroker(events.broker):
            async with http_client(events) as client:
                body = event_body(title="Unit", price="9.99", currency="USD")
                resp = await client.post(
                    "/events/create", json=body, headers=bearer(mint(role="organizer"))
                )
                assert resp.status_code == 201
            # the events database is shared by the run: earlier tests may have left rows too
            assert await events.relay.relay_once() >= 1
            publisher = events.publishers["event_created"]
            published = [
                EventCreated.model_validate(c.args[0]) for c in publisher.mock.call_args_list
            ]
            mine = [p for p in published if p.event_id == uuid.UUID(resp.json()["id"])]
            assert len(mine) == 1
            assert mine[0].price == Decimal("9.99") and mine[0].currency == "USD"
            assert await events.relay.relay_once() == 0  # the row is gone once confirmed
