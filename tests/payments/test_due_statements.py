"""On PostgreSQL, what booking's messages do to a due runs as ONE statement with the consumer's
inbox mark (kit.inbox). Proven here against the real database: for every arrival order the
due ends as the same write run after the mark in a unit of work (the SQLite path, here on
PostgreSQL and, at the end, on a real SQLite database) leaves it, and a redelivery changes
nothing."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from kit.db import Database
from kit.inbox import OneStatementHandler
from kit.consuming import consume_once
from apps.payments import handlers
from apps.payments.adapters.tables import booking_dues
from apps.payments.entrypoints.messages import BOOKING_CANCELLED, BOOKING_CREATED, BOOKING_EXPIRED
from contracts.envelope import Envelope
from contracts.messages import BookingCancelled, BookingCreated, BookingExpired
from tests.payments.conftest import booking_created, booking_ended, consumed, scalar
from tests.support.db import sqlite_database

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
        "FROM booking_dues WHERE booking_id = :b",
        b=booking_id,
    )


def story() -> list[Envelope]:
    created = booking_created()
    return [
        created,
        booking_ended(created, BookingExpired),
        booking_ended(created, BookingCancelled),
    ]


ORDERS = [order for n in (1, 2, 3) for order in itertools.permutations(range(3), n)]


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(map(str, o)) for o in ORDERS])
async def test_one_statement_ends_the_due_as_the_unit_of_work_does(payments, order):
    statuses = []
    for one_statement in (True, False):
        messages = story()
        for i in order:
            assert await deliver(payments, messages[i], one_statement=one_statement)
            assert await consumed(payments, ROUTES[type(messages[i])][0], messages[i].message_id)
        statuses.append(
            await scalar(
                payments,
                "SELECT status FROM booking_dues WHERE booking_id = :b",
                b=messages[0].booking_id,
            )
        )
    assert statuses[0] == statuses[1] is not None


@pytest.mark.parametrize("index", range(3))
async def test_a_redelivery_changes_nothing_even_where_its_write_would(payments, index):
    messages = story()
    for m in messages:
        await deliver(payments, m, one_statement=True)
    # the due moved on since (an expiry or cancellation applied again would now close it)
    async with payments.db.engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE booking_dues SET status = 'open' WHERE booking_id = :b"),
            {"b": messages[0].booking_id},
        )
    before = await due(payments, messages[0].booking_id)
    assert not await deliver(payments, messages[index], one_statement=True)
    assert await due(payments, messages[0].booking_id) == before


# --- PostgreSQL (one statement) and SQLite (the same write after the mark) agree -------------


@pytest.fixture
async def sqlite_db(tmp_path):
    async with sqlite_database("payments", tmp_path) as db:  # its migrations, on SQLite (embedded)
        yield db


async def dues_of(db: Database, bookings: list[uuid.UUID]) -> list[dict[str, Any]]:
    async with db.read() as conn:
        rows = (
            await conn.execute(
                sa.select(booking_dues).where(booking_dues.c.booking_id.in_(bookings))
            )
        ).all()
    # payment_id and updated_at are made per delivery
    out = [
        {k: v for k, v in r._mapping.items() if k not in {"payment_id", "updated_at"}} for r in rows
    ]
    return sorted(out, key=lambda r: str(r["booking_id"]))


async def test_postgresql_and_sqlite_leave_the_same_dues_for_the_same_messages(payments, sqlite_db):
    """Every arrival order above, each message delivered twice, through both paths."""
    deliveries, bookings = [], []
    for order in ORDERS:
        messages = story()
        bookings.append(messages[0].booking_id)
        deliveries += [messages[i] for i in order for _ in range(2)]
    assert payments.db.is_postgres and not sqlite_db.is_postgres
    for db in (payments.db, sqlite_db):
        for m in deliveries:
            queue, handler = ROUTES[type(m)]
            await consume_once(db, queue, m, handler)
    on_postgres = await dues_of(payments.db, bookings)
    assert len(on_postgres) == len(ORDERS)
    assert await dues_of(sqlite_db, bookings) == on_postgres
