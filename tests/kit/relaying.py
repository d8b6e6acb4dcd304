"""What the outbox relay's real-broker tests share: publishers on a test's own exchange, a spy
queue, outbox rows written and read back, messages drained. Their fixtures (``db``,
``exchange``, ``producer``) are in this folder's conftest."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aio_pika
import sqlalchemy as sa
from faststream.rabbit import RabbitExchange

from contracts.messages import EventCreated
from kit.db import Database
from kit.outbox import OUTBOX, OutboxRelay
from kit.publishing import Publishers
from tests.support.messages import event_created
from tests.support.waiting import eventually

SERVICE = "relaytest"
UNROUTABLE = "nobody_binds_this"  # a publisher exists, no queue is bound: the broker returns it


def publishers_on(broker: Any, exchange: RabbitExchange) -> Publishers:
    """As ``declare_publishers`` declares them, on ``exchange``, plus one for an unbound key."""
    return Publishers(
        broker,
        {
            key: broker.publisher(exchange=exchange, routing_key=key, persist=True, mandatory=True)
            for key in (EventCreated.routing_key, UNROUTABLE)
        },
    )


async def spy_queue(amqp: Any, exchange: RabbitExchange, routing_key: str) -> Any:
    """A queue of the test's own bound to ``routing_key``: what a consumer would receive."""
    queue = await amqp.declare_queue(exclusive=True)
    await queue.bind(exchange.name, routing_key)
    return queue


def event(title: str) -> EventCreated:
    return event_created(title=title, producer=SERVICE)


async def write_rows(db: Database, rows: list[dict[str, Any]]) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(OUTBOX.insert(), rows)


async def outbox_rows(db: Database) -> dict[uuid.UUID, tuple[str, int]]:
    async with db.engine.connect() as conn:
        result = await conn.execute(sa.select(OUTBOX.c.id, OUTBOX.c.routing_key, OUTBOX.c.attempts))
        return {r.id: (r.routing_key, r.attempts) for r in result}


async def drain(queue: Any) -> list[aio_pika.abc.AbstractIncomingMessage]:
    got = []
    while (msg := await queue.get(fail=False, timeout=5)) is not None:
        await msg.ack()
        got.append(msg)
    return got


async def run_until_published(relay: OutboxRelay, count: int) -> None:
    """Run ``relay`` until it has published ``count`` rows, then stop it."""
    running = asyncio.create_task(relay.run())
    try:
        await eventually(
            lambda: asyncio.sleep(0, relay.published_total), until=lambda n: n == count
        )
    finally:
        relay.stop()
        await running
