"""Hold expiry with two booking replicas sweeping the same database at the same time."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

from apps.booking.bootstrap import build
from apps.booking.entrypoints.sweeper import sweep_once
from kit.uow import UnitOfWork
from contracts.messages import BookingExpired
from tests.booking.conftest import (
    book_body,
    bound_queue,
    collect,
    event_created,
    feed,
    reserve,
    rows,
    scalar,
)
from tests.conftest import http_client
from tests.support.tokens import bearer, mint
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def two_replicas(start_service, capacity: int, **sweeper: float) -> AsyncIterator[tuple]:
    """Two booking replicas on the same database whose holds lapse at once, swept as
    ``sweeper`` says (``booking_sweep_*``), and an event of ``capacity`` seats both know."""
    replica = {"booking_hold_seconds": 0, **sweeper}
    async with start_service(build, **replica) as one, start_service(build, **replica) as two:
        event = event_created(capacity=capacity)
        await feed(one, event)
        yield one, two, event


async def test_two_sweepers_expire_each_hold_once(start_service, amqp):
    queue = await bound_queue(amqp, "booking_expired")
    async with two_replicas(
        start_service, 100, booking_sweep_interval_seconds=0, booking_sweep_batch_size=3
    ) as (one, two, event):
        async with http_client(one) as client:
            made = await asyncio.gather(
                *(
                    client.post("/booking/create", json=book_body(event, 2), headers=bearer(mint()))
                    for _ in range(40)
                )
            )
        ids = {r.json()["id"] for r in made if r.status_code == 201}
        assert len(ids) == 40

        # both replicas sweep at once, in small batches, several rounds each
        expired = await asyncio.gather(*(sweep_once(s) for s in (one, two, one, two)))

        assert sum(expired) >= 40  # (plus lapsed holds other tests left in this database)
        assert (
            await scalar(
                one,
                "SELECT count(*) FROM bookings WHERE status = 'expired' AND event_id = :e",
                e=event.event_id,
            )
            == 40
        )
        assert await rows(
            one, "SELECT capacity, held, sold FROM inventory WHERE event_id = :e", e=event.event_id
        ) == [(100, 0, 0)]
        users = [uuid.UUID(r.json()["user_id"]) for r in made]
        assert (
            await scalar(
                one,
                "SELECT sum(held) FROM user_holds WHERE user_id = ANY(CAST(:u AS uuid[]))",
                u=users,
            )
            == 0
        )
        # every outbox row published, then exactly one booking_expired per hold
        await eventually(lambda: scalar(one, "SELECT count(*) FROM outbox"), until=lambda n: n == 0)
        got = await collect(queue, sum(expired))
        mine = [
            m.booking_id
            for _, b in got
            if (m := BookingExpired.model_validate(b)).event_id == event.event_id
        ]
        assert sorted(mine) == sorted(uuid.UUID(i) for i in ids)
        assert await queue.get(no_ack=True, fail=False) is None


async def test_background_sweepers_of_two_replicas_release_seats(start_service):
    async with two_replicas(
        start_service, 30, booking_sweep_interval_seconds=0.02, booking_sweep_batch_size=2
    ) as (one, two, event):
        for svc in (one, two):
            async with UnitOfWork(svc.db) as uow:
                for _ in range(10):
                    await reserve(uow, event, 1, hold_seconds=0)
                await uow.commit()
        await eventually(
            lambda: rows(one, "SELECT held FROM inventory WHERE event_id = :e", e=event.event_id),
            until=lambda r: r == [(0,)],
        )
        assert (
            await scalar(
                one,
                "SELECT count(*) FROM bookings WHERE status = 'expired' AND event_id = :e",
                e=event.event_id,
            )
            == 20
        )
        outbox = await rows(
            one,
            "SELECT payload->>'booking_id', count(*) FROM outbox "
            "WHERE routing_key = 'booking_expired' GROUP BY 1 HAVING count(*) > 1",
        )
        assert outbox == []
