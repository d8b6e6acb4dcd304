"""Fixtures of the outbox relay's real-broker tests (helpers in ``tests.kit.relaying``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
import sqlalchemy as sa
from faststream.rabbit import ExchangeType, RabbitExchange

from kit.broker import make_broker
from kit.db import Database
from kit.outbox import OUTBOX
from kit.settings import ServiceSettings
from kit.tables import add_kit_tables
from tests.kit.relaying import SERVICE, publishers_on


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    """The relaying service's database: only the kit's outbox table, empty."""
    db = Database(ServiceSettings(service_name=SERVICE), migrations=None)
    await db.prepare()
    async with db.engine.begin() as conn:
        await conn.run_sync(add_kit_tables(sa.MetaData())["outbox"].metadata.create_all)
        await conn.execute(OUTBOX.delete())  # leftovers of an earlier test in this run
    yield db
    await db.dispose()


@pytest.fixture
async def exchange(amqp: Any) -> RabbitExchange:
    """A topic exchange of this test's own (declared on the broker)."""
    ex = RabbitExchange(f"outbox-test-{uuid.uuid4().hex[:8]}", type=ExchangeType.TOPIC)
    await amqp.declare_exchange(ex.name, aio_pika.ExchangeType.TOPIC, durable=True)
    return ex


@pytest.fixture
async def producer(exchange: RabbitExchange) -> AsyncIterator[Any]:
    """The relaying service's broker, with publishers on the test's exchange (connected)."""
    broker = make_broker(ServiceSettings(service_name=SERVICE))
    publishers = publishers_on(broker, exchange)
    await broker.connect()
    try:
        yield publishers
    finally:
        await broker.stop()
