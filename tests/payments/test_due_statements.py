"""On PostgreSQL, what booking's messages do to a due runs as ONE statement with the consumer's
inbox mark (kit.inbox). Proven here against the real database: for every arrival order the
due ends as the unit-of-work path (used on SQLite) leaves it, and a redelivery changes nothing."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from kit.inbox import OneStatementHandler
from kit.messaging import consume_once
from apps.payments import handlers
from apps.payments.entrypoints.messages import BOOKING_CANCELLED, BOOKING_CREATED, BOOKING_EXPIRED
from contracts.envelope import Envelope
from contracts.messages import BookingCancelled, BookingCreated, BookingExpired
from tests.payments.conftest import booking_created, booking_ended, consumed, scalar

pytestmark = pytest.mark.integration

ROUTES: dict[type[Envelope], tuple[str, OneStatementHandler[Any]]] = {
    BookingCreated: (BOOKING_CREATED.name, handlers.record_booking_due),
    BookingExpired: (BOOKING_EXPIRED.name, handlers.close_expired_booking),
    BookingCancelled: (BOOKING_CANCELLED.name, handlers.close_cancelled_booking),
}


@pytest.fixture(scope="module")
async def payments(start_service):
    from apps.payments.bootstrap import build

    async with start_service(build, connect_broker=False, outbox_relay=False) as svc:
        yield svc


async def deliver(service: Any, message: Envelope, *, one_statement: bool) -> bool:
    queue, handler = ROUTES[type(message)]
    run = handler if one_statement else handler.in_unit_of_work
    return await consume_once(service.db, queue, message, run)


async def due(service: Any, booking_id: uuid.UUID) -> str | None:
    return await scalar(
        service,
        "SELECT json_build_array(status, amount::text, currency, user_id, updated_at)::text "
        "FROM booking_dues WHERE booking_id = :b", b=booking_id,
    )


def story() -> list[Envelope]:
    created = booking_created()
    return [created, booking_ended(created, BookingExpired),
            booking_ended(created, BookingCancelled)]


ORDERS = [order for n in (1, 2, 3) for order in itertools.permutations(range(3), n)]


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(map(str, o)) for o in ORDERS])
async def test_one_statement_ends_the_due_as_the_unit_of_work_does(payments, order):
    statuses = []
    for one_statement in (True, False):
        messages = story()
        for i in order:
            assert await deliver(payments, messages[i], one_statement=one_statement)
            assert await consumed(payments, ROUTES[type(messages[i])][0], messages[i].message_id)
        statuses.append(await scalar(
            payments, "SELECT status FROM booking_dues WHERE booking_id = :b",
            b=messages[0].booking_id,
        ))
    assert statuses[0] == statuses[1] is not None


@pytest.mark.parametrize("index", range(3))
async def test_a_redelivery_changes_nothing_even_where_its_write_would(payments, index):
    messages = story()
    for m in messages:
        await deliver(payments, m, one_statement=True)
    # the due moved on since (an expiry or cancellation applied again would now close it)
    async with payments.db.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE booking_dues SET status = 'open' WHERE booking_id = :b"),
                           {"b": messages[0].booking_id})
    before = await due(payments, messages[0].booking_id)
    assert not await deliver(payments, messages[index], one_statement=True)
    assert await due(payments, messages[0].booking_id) == before
