"""Publish on commit: the relay's hand-off path, on the real RabbitMQ and PostgreSQL.

* A unit of work's committed rows (``publish``: written at commit, or ``inline`` by the use
  case's own statement) are
  published by its process's relay at once, in commit order, and deleted once confirmed; the
  polling rounds never read them back (their grace here is longer than the test).
* What the hand-off could not publish (returned by the broker) stays in the table and goes out
  through a polling round once older than the grace; a row committed but never handed over (its
  process died first) too.
* No row is published twice while both paths run, with polling rounds every few milliseconds.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from kit import outbox
from kit.db import Database
from kit.uow import UnitOfWork
from kit.publishing import outbox_publish
from kit.handoff import Handoff
from kit.outbox import OutboxRelay
from tests.kit.relaying import UNROUTABLE, drain, event, outbox_rows, spy_queue, write_rows
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@asynccontextmanager
async def handoff_relay(
    db: Database, producer: Any, *, poll_seconds: float, grace_seconds: float
) -> AsyncIterator[OutboxRelay]:
    """A relay with the hand-off on, running (its hand-off in place) until the block ends."""
    relay = OutboxRelay(
        db,
        outbox_publish(producer),
        handoff=True,
        poll_seconds=poll_seconds,
        handoff_grace_seconds=grace_seconds,
    )
    task = asyncio.create_task(relay.run())
    try:
        await eventually(lambda: asyncio.sleep(0, relay.db.handoff), until=lambda h: h is not None)
        yield relay
    finally:
        relay.stop()
        await task


async def commit(db: Database, *messages: Any, inline: Any = None) -> None:
    """One unit of work: ``messages`` written at commit, ``inline`` by its own statement."""
    async with UnitOfWork(db) as uow:
        uow.publish(*messages)
        if inline is not None:
            await outbox.insert_rows(uow.conn, uow.publish(inline, inline=True))
        await uow.commit()


async def test_committed_rows_are_published_at_once_in_commit_order(
    db, exchange, producer, amqp
) -> None:
    queue = await spy_queue(amqp, exchange, "event_created")
    sent = []
    # no polling round can take these rows
    async with handoff_relay(db, producer, poll_seconds=3600, grace_seconds=3600) as relay:
        for i in range(10):
            staged, inline = event(f"staged-{i}"), event(f"inline-{i}")
            await commit(db, staged, inline=inline)
            sent += [staged, inline]
        await eventually(lambda: outbox_rows(db), until=lambda rows: rows == {}, timeout=10)
    got = await drain(queue)
    assert [m.message_id for m in got] == [str(m.message_id) for m in sent]
    assert relay.published_total == 20


async def test_what_the_handoff_could_not_publish_goes_out_once_older_than_the_grace(
    db, exchange, producer, amqp
) -> None:
    returned = outbox.rows_of(db, [event("returned")])
    returned[0]["routing_key"] = UNROUTABLE  # nothing bound yet: the broker returns it
    async with handoff_relay(db, producer, poll_seconds=0.05, grace_seconds=1.0) as relay:
        await write_rows(db, returned)
        relay.db.handoff.put(returned)  # as a unit of work does once it committed
        await eventually(lambda: asyncio.sleep(0, relay.failed_total), until=lambda n: n == 1)
        assert set(await outbox_rows(db)) == {returned[0]["id"]}  # kept, attempts untouched

        queue = await spy_queue(amqp, exchange, UNROUTABLE)  # now something listens
        await eventually(lambda: outbox_rows(db), until=lambda rows: rows == {}, timeout=10)
    assert [m.message_id for m in await drain(queue)] == [str(returned[0]["id"])]


async def test_a_row_committed_but_never_handed_over_is_published_by_a_polling_round(
    db, exchange, producer, amqp
) -> None:
    queue = await spy_queue(amqp, exchange, "event_created")
    orphan = event("its process died after the commit")
    async with handoff_relay(db, producer, poll_seconds=0.05, grace_seconds=0.5):
        await write_rows(db, outbox.rows_of(db, [orphan]))  # committed, never handed over
        await eventually(lambda: outbox_rows(db), until=lambda rows: rows == {}, timeout=10)
    assert [m.message_id for m in await drain(queue)] == [str(orphan.message_id)]


async def test_no_row_is_published_twice_while_both_paths_run(db, exchange, producer, amqp) -> None:
    queue = await spy_queue(amqp, exchange, "event_created")
    # polling rounds every 10 ms, each of them a chance to take a row the hand-off holds
    sent = [event(f"concurrent-{i}") for i in range(200)]
    async with handoff_relay(db, producer, poll_seconds=0.01, grace_seconds=2.0) as relay:
        await asyncio.gather(*(commit(db, *sent[i : i + 4]) for i in range(0, len(sent), 4)))
        await eventually(lambda: outbox_rows(db), until=lambda rows: rows == {}, timeout=20)
    deliveries = Counter(m.message_id for m in await drain(queue))
    assert set(deliveries) == {str(m.message_id) for m in sent}
    assert max(deliveries.values()) == 1
    assert relay.published_total == 200


def test_the_handoff_keeps_commit_order_and_is_bounded() -> None:
    handoff = Handoff(limit=5)
    handoff.put([{"id": i} for i in range(3)])
    assert handoff.ready.is_set()
    handoff.put([{"id": i} for i in range(3, 6)])  # past the bound: left to the polling rounds
    handoff.put([{"id": 6}, {"id": 7}])
    assert handoff.dropped == 3
    assert [r["id"] for r in handoff.take(4)] == [0, 1, 2, 6]
    assert handoff.ready.is_set()  # one left
    assert [r["id"] for r in handoff.take(4)] == [7]
    assert not handoff.ready.is_set()


async def test_rows_a_statement_wrote_itself_wake_other_processes_relays(db) -> None:
    """A process without a relay (OUTBOX_RELAY=false) NOTIFYs for inline rows as for staged ones;
    a single-statement unit of work refuses a message it would have to write itself."""
    import asyncpg

    no_relay = Database(db.settings.model_copy(update={"outbox_relay": False}), migrations=None)
    url = no_relay.url
    listener = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    woken = asyncio.Event()
    await listener.add_listener(outbox.NOTIFY_CHANNEL, lambda *_: woken.set())
    try:
        inline = event("inline, no relay here")
        await commit(no_relay, inline=inline)
        await asyncio.wait_for(woken.wait(), 5)
        assert set(await outbox_rows(db)) == {inline.message_id}

        async with UnitOfWork(no_relay, single_statement=True) as uow:
            with pytest.raises(RuntimeError, match="cannot stage"):
                uow.publish(event("nobody would write it"))
    finally:
        await listener.close()
        await no_relay.dispose()


async def test_only_what_a_committed_statement_wrote_inline_is_handed_over(db) -> None:
    """Rows published ``inline`` are handed over as the unit of work commits: those of a
    statement that wrote nothing (discarded, or rolled back) never are, so the relay cannot
    publish a message whose row does not exist."""
    db.handoff = handoff = Handoff()
    try:
        written, refused, rolled_back = event("written"), event("refused"), event("rolled back")
        async with UnitOfWork(db) as uow:
            uow.publish(refused, inline=True)  # its statement wrote nothing: the use case ...
            uow.discard_messages()  # ... forgets it and tries again
            await outbox.insert_rows(uow.conn, uow.publish(written, inline=True))
            await uow.commit()
        async with UnitOfWork(db) as uow:
            uow.publish(rolled_back, inline=True)  # left uncommitted
        assert [r["id"] for r in handoff.take(10)] == [written.message_id]
        assert set(await outbox_rows(db)) == {written.message_id}
    finally:
        db.handoff = None
