"""The embedded mode's in-memory broker keeps the delivery promises the platform relies on:

* a consumer's transient failure (the kit's policy nacks with requeue) fails the publish, so the
  publishing outbox keeps the row and relays it again — nothing is lost, as with RabbitMQ's
  redelivery; every other consumer bound to the message still gets it that first time;
* a permanent failure (rejected, dead-lettered on RabbitMQ) does not block the publisher;
* analytics facts published to ``eventbooking`` reach the ``analytics`` fanout exchange;
* the kit's outbox relay, publishing through it, retries until the consumer succeeds, and the
  idempotent consumer applies the message once.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from kit.db import Database
from kit.uow import UnitOfWork
from kit.broker import PermanentFailure, make_broker
from kit.consuming import consume_once
from kit.publishing import declare_publishers, outbox_publish
from kit.outbox import OUTBOX, OutboxRelay
from kit.settings import ServiceSettings
from contracts.messages import AnalyticsFact, PaymentConfirmed
from contracts.topology import ANALYTICS_EXCHANGE, ANALYTICS_QUEUE, DOMAIN_EXCHANGE, queue_for
from deploy.local.embedded import InMemoryBroker, RedeliveryNeeded, analytics_bridge
from tests.support.messages import payment_confirmed

UNREACHABLE = "amqp://guest:guest@127.0.0.1:1/"
EVENTS_MIGRATIONS = Path(__file__).resolve().parents[2] / "apps" / "events" / "migrations"


def _settings(name: str, **kw: object) -> ServiceSettings:
    return ServiceSettings(service_name=name, rabbitmq_url=UNREACHABLE, **kw)


async def test_a_nacked_delivery_fails_the_publish_and_other_consumers_still_get_it() -> None:
    producer = make_broker(_settings("payments"))
    publish = outbox_publish(declare_publishers(producer, [PaymentConfirmed]))
    flaky, steady = make_broker(_settings("booking")), make_broker(_settings("notifications"))
    seen: dict[str, list[uuid.UUID]] = {"flaky": [], "steady": []}
    failures = [RuntimeError("database is locked")]

    @flaky.subscriber(queue_for("booking", PaymentConfirmed), DOMAIN_EXCHANGE)
    async def on_flaky(msg: PaymentConfirmed) -> None:
        if failures:
            raise failures.pop()
        seen["flaky"].append(msg.message_id)

    @steady.subscriber(queue_for("notifications", PaymentConfirmed), DOMAIN_EXCHANGE)
    async def on_steady(msg: PaymentConfirmed) -> None:
        seen["steady"].append(msg.message_id)

    msg = payment_confirmed()
    payload = msg.model_dump(mode="json")
    async with InMemoryBroker(producer, flaky, steady):
        with pytest.raises(RedeliveryNeeded, match="booking.payment_confirmed"):
            await publish(msg.routing_key, payload, {})
        assert seen == {"flaky": [], "steady": [msg.message_id]}
        await publish(msg.routing_key, payload, {})  # the outbox's retry
    assert seen["flaky"] == [msg.message_id]


async def test_a_rejected_delivery_is_dead_lettered_not_retried() -> None:
    producer = make_broker(_settings("payments"))
    publish = outbox_publish(declare_publishers(producer, [PaymentConfirmed]))
    consumer = make_broker(_settings("booking"))
    calls: list[uuid.UUID] = []

    @consumer.subscriber(queue_for("booking", PaymentConfirmed), DOMAIN_EXCHANGE)
    async def on_payment(msg: PaymentConfirmed) -> None:
        calls.append(msg.message_id)
        raise PermanentFailure("can never succeed")

    msg = payment_confirmed()
    async with InMemoryBroker(producer, consumer):
        await publish(msg.routing_key, msg.model_dump(mode="json"), {})  # does not raise
    assert calls == [msg.message_id]


async def test_analytics_facts_reach_the_analytics_exchange() -> None:
    producer = make_broker(_settings("payments"))
    publish = outbox_publish(declare_publishers(producer, [PaymentConfirmed]))
    analytics = make_broker(_settings("analytics"))
    got: list[AnalyticsFact] = []

    @analytics.subscriber(ANALYTICS_QUEUE, ANALYTICS_EXCHANGE)
    async def on_fact(fact: AnalyticsFact) -> None:
        got.append(fact)

    msg = payment_confirmed(amount=Decimal("50.00"))
    async with InMemoryBroker(producer, analytics, analytics_bridge()):
        await publish(msg.routing_key, msg.model_dump(mode="json"), {})
    assert [f.message_id for f in got] == [msg.message_id]
    assert isinstance(got[0], PaymentConfirmed) and got[0].amount == Decimal("50.00")


async def test_the_outbox_relay_retries_until_the_consumer_succeeds_once(tmp_path: Path) -> None:
    db = Database(
        _settings("events", database_url=f"sqlite:///{tmp_path}/", database_prefix="t_"),
        EVENTS_MIGRATIONS,
    )
    assert db.url.database == f"{tmp_path}/t_events.db"  # a DATABASE_URL directory: one file each
    await db.prepare()
    producer = make_broker(db.settings)
    relay = OutboxRelay(db, outbox_publish(declare_publishers(producer, [PaymentConfirmed])))
    consumer_db = Database(
        _settings("booking", database_url=f"sqlite:///{tmp_path}/", database_prefix="t_"),
        EVENTS_MIGRATIONS,  # only for its kit tables (the inbox)
    )
    await consumer_db.prepare()
    consumer = make_broker(consumer_db.settings)
    applied: list[uuid.UUID] = []
    failures = [RuntimeError("transient"), RuntimeError("transient")]

    async def apply(msg: PaymentConfirmed, _uow: object) -> None:
        applied.append(msg.message_id)

    @consumer.subscriber(queue_for("booking", PaymentConfirmed), DOMAIN_EXCHANGE)
    async def on_payment(msg: PaymentConfirmed) -> None:
        if failures:
            raise failures.pop()
        await consume_once(consumer_db, "booking.payment_confirmed", msg, apply)
        await consume_once(consumer_db, "booking.payment_confirmed", msg, apply)  # a duplicate

    msg = payment_confirmed()
    try:
        async with InMemoryBroker(producer, consumer):
            async with UnitOfWork(db) as uow:
                uow.publish(msg)
                await uow.commit()
            outcomes = []
            for _ in range(3):
                try:
                    outcomes.append(await relay.relay_once())
                except Exception as exc:  # noqa: BLE001 - RelayError: rows kept for the next round
                    outcomes.append(type(exc).__name__)
            assert outcomes == ["RelayError", "RelayError", 1]
            async with db.engine.connect() as conn:
                left = (await conn.execute(sa.select(sa.func.count()).select_from(OUTBOX))).scalar()
            assert left == 0
        assert applied == [msg.message_id]
        assert relay.failed_total == 2 and relay.published_total == 1
    finally:
        await db.dispose()
        await consumer_db.dispose()
