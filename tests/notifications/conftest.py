"""Fixtures of the notifications tests: an SMTP sink on a free port, a publisher on the bus."""

from __future__ import annotations

import aio_pika
import pytest

from contracts.topology import DOMAIN_EXCHANGE
from tests.notifications.helpers import Sink
from tests.notifications.webhook_receiver import Receiver


@pytest.fixture
async def sink():
    s = Sink()
    await s.up()
    yield s
    if s.server is not None:
        await s.down()


@pytest.fixture(scope="module")
async def module_sink():
    s = Sink()
    await s.up()
    yield s
    await s.down()


@pytest.fixture(scope="module")
async def receiver():
    """A webhook receiver on a free port (``webhook_receiver.Receiver``)."""
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


@pytest.fixture(scope="module")
async def bus(rabbitmq_url):
    conn = await aio_pika.connect_robust(rabbitmq_url)
    channel = await conn.channel(publisher_confirms=True)
    exchange = await channel.declare_exchange(DOMAIN_EXCHANGE.name, type="topic", durable=True)
    yield exchange
    await conn.close()
