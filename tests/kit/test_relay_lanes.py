"""Relay lanes only while there is a backlog (``OutboxRelay._rounds(primary=...)``), on the real
RabbitMQ and PostgreSQL.

The plain path it replaces woke every lane on every commit and poll, so a quiet relay ran an
empty round (BEGIN, a claiming SELECT, COMMIT) per extra lane each time. Here:

* a quiet relay with three lanes runs no more rounds than one lane would: about one per poll
  and per commit (the plain path: three);
* with a backlog the extra lanes do join in (rounds overlap) and drain it, and what reaches the
  broker is the same rows, in the same order, as a relay with a single lane publishes.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import sqlalchemy as sa

from kit import outbox
from kit.db import Database
from kit.outbox import OUTBOX, OutboxRelay
from kit.publishing import outbox_publish
from contracts.messages import EventCreated
from tests.kit.relaying import drain, event, run_until_published, spy_queue
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


class Rounds:
    """Counts the relay's rounds (each one a claiming transaction) and how many overlapped.
    The relay's own ``relay_once`` runs; this only watches it."""

    def __init__(self, relay: OutboxRelay) -> None:
        self.results: list[int] = []
        self.running = 0
        self.most_at_once = 0
        inner = relay.relay_once

        async def relay_once(*, fresh: bool = False) -> int:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            try:
                n = await inner(fresh=fresh)
            finally:
                self.running -= 1
            self.results.append(n)
            return n

        relay.relay_once = relay_once  # type: ignore[method-assign]

    def reset(self) -> None:
        self.results.clear()
        self.most_at_once = self.running


async def write_one_by_one(db: Database, messages: list[EventCreated]) -> None:
    for m in messages:  # one transaction each, as units of work commit them
        async with db.engine.begin() as conn:
            await outbox.insert_rows(conn, outbox.rows_of(db, [m]))
        db.outbox_written.set()  # what a unit of work's commit does (hand-off off)


async def test_a_quiet_relay_runs_one_lanes_rounds(db, producer, amqp, exchange) -> None:
    """Quiet after a backlog: the extra lanes stop once a round comes back short."""
    poll, idle, commits = 0.1, 1.5, 6
    queue = await spy_queue(amqp, exchange, EventCreated.routing_key)  # (publishes are mandatory)
    relay = OutboxRelay(
        db, outbox_publish(producer), batch_size=8, poll_seconds=poll, pipeline_depth=3
    )
    rounds = Rounds(relay)
    running = asyncio.create_task(relay.run())
    try:
        await write_one_by_one(db, [event(f"burst-{i}") for i in range(40)])
        await eventually(lambda: asyncio.sleep(0, relay.published_total), until=lambda n: n == 40)
        await asyncio.sleep(poll)  # the burst's last rounds end
        rounds.reset()
        quiet_since = time.monotonic()
        await asyncio.sleep(idle)  # nothing to do: the primary lane polls
        for m in [event(f"quiet-{i}") for i in range(commits)]:
            await write_one_by_one(db, [m])
            await asyncio.sleep(poll / 2)
        await eventually(
            lambda: asyncio.sleep(0, relay.published_total), until=lambda n: n == 40 + commits
        )
        quiet_for = time.monotonic() - quiet_since
    finally:
        relay.stop()
        await running
    # one lane: a round per poll and per commit, at most (the plain path: three times that)
    one_lane = quiet_for / poll + commits + 2
    assert len(rounds.results) <= one_lane, rounds.results
    assert rounds.most_at_once == 1  # never a second lane: no backlog since the burst
    assert sum(rounds.results) == commits
    assert len(await drain(queue)) == 40 + commits


async def publish_backlog(db: Database, producer: Any, amqp: Any, exchange: Any, depth: int) -> Any:
    queue = await spy_queue(amqp, exchange, EventCreated.routing_key)
    messages = [event(f"backlog-{depth}-{i}") for i in range(120)]
    await write_one_by_one(db, messages)
    relay = OutboxRelay(db, outbox_publish(producer), batch_size=8, pipeline_depth=depth)
    rounds = Rounds(relay)
    await run_until_published(relay, 120)
    got = [m.message_id for m in await drain(queue)]
    assert got == [str(m.message_id) for m in messages]  # every row once, in write order
    async with db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(OUTBOX))).scalar() == 0
    return rounds


async def test_with_a_backlog_the_extra_lanes_drain_it_as_one_lane_would(
    db, producer, amqp, exchange
) -> None:
    one_lane = await publish_backlog(db, producer, amqp, exchange, depth=1)
    three_lanes = await publish_backlog(db, producer, amqp, exchange, depth=3)
    assert one_lane.most_at_once == 1
    assert three_lanes.most_at_once >= 2  # the extra lanes joined in
