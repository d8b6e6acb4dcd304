"""kill -9 of consumer processes, again and again, while bookings and payments flow through the
gateway: every booking still ends as it must, with one charge, one notification and one count.

The victims are payments (an HTTP command handler and the consumer of booking's facts),
notifications and analytics. Each is SIGKILLed a few times while messages are in flight (what
it had fetched but not acked goes back to its queue), then started again with its original
command and environment. The client keeps to its contract: Idempotency-Key on every command,
retried while the gateway answers 5xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random

import pytest

from tests.reliability.flows import DECLINED, Order, Sale
from tests.reliability.harness import Harness
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VICTIMS = ("payments", "notifications", "analytics")


async def kill_repeatedly(
    harness: Harness, stop: asyncio.Event, *, min_kills: int, log: list[str], backlog: list[int]
) -> None:
    """Round-robin SIGKILL + restart; at least ``min_kills`` kills, until ``stop`` after that.
    ``backlog`` gets the messages in the victim's queues (ready + unacked) just before each kill."""
    rng = random.Random(9)
    for n, victim in enumerate(itertools.cycle(VICTIMS)):
        if stop.is_set() and n >= min_kills:
            return
        await asyncio.sleep(rng.uniform(0.3, 1.2))  # let it take messages, then kill it mid-way
        depths = await asyncio.to_thread(harness.queue_depths)
        backlog.append(sum(v for q, v in depths.items() if q.split(".")[0] == victim
                           and not q.endswith(".dlq")))
        await harness.restart(victim)
        log.append(victim)


async def test_consumers_killed_mid_message_lose_nothing_and_do_nothing_twice(harness, api):
    sale = await Sale.open(api, harness)
    customers = await sale.customers(8)
    orders = [
        Order(token=token, user_id=user_id, card=DECLINED if i % 5 == 4 else "tok_visa",
              quantity=1 + i % 2)
        for i, (user_id, token) in zip(range(80), itertools.cycle(customers), strict=False)
    ]
    stop, killed, in_queue = asyncio.Event(), [], []
    chaos = asyncio.create_task(
        kill_repeatedly(harness, stop, min_kills=9, log=killed, backlog=in_queue)
    )
    try:
        # a steady stream (about 8 orders a second) so the kills land while messages flow
        placing = []
        for order in orders:
            placing.append(asyncio.create_task(sale.place(order)))
            await asyncio.sleep(0.12)
        await asyncio.gather(*placing)
    finally:
        stop.set()
        await chaos
    await harness.wait_ready()

    with contextlib.suppress(AssertionError):  # the audit below says what did not arrive
        await eventually(sale.settled, timeout=60, interval=0.5)
    results = await sale.audit("consumers killed mid-message", kills=len(killed),
                               victims=",".join(killed), victim_queue_at_kill=in_queue)
    assert len(killed) >= 9
    assert all(not o.errors for o in orders), [o.errors for o in orders if o.errors]
    for counts in results:
        assert (counts.lost, counts.duplicated) == (0, 0), counts
