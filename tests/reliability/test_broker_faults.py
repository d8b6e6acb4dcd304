"""The broker goes away in the middle of a sale: every connection dropped, or RabbitMQ itself
stopped and started again. The services reconnect by themselves (nobody restarts them), their
outboxes drain, and nothing is lost or done twice.

The machine's RabbitMQ is shared: the quick test drops only the connections of this run's own
vhost (``close_all_connections --vhost``); the real restart is a short @slow test that always
starts the broker again (``finally``) and waits for ``rabbitmqctl await_startup``.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import time
from collections.abc import Callable

import pytest

from tests.reliability.flows import DECLINED, Order, Sale
from tests.reliability.harness import Harness
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def rabbitmqctl(*args: str, timeout: float = 120) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=timeout)


def drop_connections(harness: Harness) -> Callable[[], None]:
    def fault() -> None:
        vhost = harness.rabbitmq_url.rsplit("/", 1)[1]
        rabbitmqctl("close_all_connections", "--vhost", vhost, "fault test")

    return fault


def restart_broker(down_seconds: float = 3.0) -> None:
    try:
        rabbitmqctl("stop_app")
        time.sleep(down_seconds)  # the broker is really gone for a moment
    finally:
        rabbitmqctl("start_app")
        rabbitmqctl("await_startup")


async def sale_through_broker_fault(
    harness: Harness, api, fault: Callable[[], None], name: str
) -> None:
    sale = await Sale.open(api, harness)
    customers = await sale.customers(6)
    orders = [
        Order(token=token, user_id=user_id, card=DECLINED if i % 6 == 5 else "tok_visa")
        for i, (user_id, token) in zip(range(40), itertools.cycle(customers), strict=False)
    ]
    placing = []
    faulted = None
    for i, order in enumerate(orders):
        placing.append(asyncio.create_task(sale.place(order)))
        if i == 10:  # a quarter in: the broker goes away while the rest is placed
            faulted = asyncio.create_task(asyncio.to_thread(fault))
        await asyncio.sleep(0.1)
    assert faulted is not None
    await faulted
    await asyncio.gather(*placing)
    # accounts opened after the fault: auth's relay must have reconnected to welcome them
    newcomers = [user_id for user_id, _ in await sale.customers(2)]

    await harness.wait_ready()  # every service sees its broker again, without being restarted
    assert all(harness.alive().values()), harness.alive()

    async def welcomed() -> bool:
        rows = await harness.sql(
            "notifications",
            "SELECT count(*) AS n FROM notifications WHERE kind = 'welcome' AND user_id = ANY($1::uuid[])",
            newcomers,
        )
        return rows[0]["n"] == len(newcomers)

    await eventually(sale.settled, timeout=60, interval=0.5)
    await eventually(welcomed, timeout=30, interval=0.5)
    await eventually(harness.outbox_backlog, until=lambda b: not any(b.values()), timeout=30)
    results = await sale.audit(name)
    assert all(not o.errors for o in orders), [o.errors for o in orders if o.errors]
    for counts in results:
        assert (counts.lost, counts.duplicated) == (0, 0), counts


async def test_all_connections_dropped_mid_sale_services_reconnect_nothing_lost(harness, api):
    await sale_through_broker_fault(
        harness, api, drop_connections(harness), "broker connections dropped"
    )


@pytest.mark.slow
async def test_rabbitmq_restarted_mid_sale_services_reconnect_outboxes_drain(harness, api):
    await sale_through_broker_fault(harness, api, restart_broker, "RabbitMQ restarted")
