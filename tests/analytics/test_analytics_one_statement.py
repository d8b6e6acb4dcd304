"""On PostgreSQL each fact is folded into the read model by ONE statement with its inbox mark
(apps.analytics.adapters.repository, kit.inbox). These tests prove that statement keeps
the domain's rules, whatever the arrival order, redeliveries and concurrency: the stored row is
exactly the domain's fold of the facts (and what the same write stores after the mark in a unit
of work: the SQLite path, here on PostgreSQL and, at the end, on a real SQLite database)."""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import asdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from apps.analytics import handlers
from apps.analytics.adapters.tables import bookings, events, payments
from apps.analytics.bootstrap import build
from apps.analytics.domain import BookingRecord, EventRecord, PaymentRecord
from kit.db import Database
from kit.inbox import OneStatementHandler
from kit.broker import PermanentFailure
from kit.consuming import consume_once
from contracts.envelope import Envelope
from contracts.messages import PaymentDetails, UserRegistered
from tests.analytics.factories import BookingFacts, EventFacts, now
from tests.support.db import inbox_marks, sqlite_database

pytestmark = pytest.mark.integration  # needs PostgreSQL

CONSUMER = "analytics"


@pytest.fixture(scope="module")
async def analytics(start_service):
    async with start_service(build, connect_broker=False, outbox_relay=False) as svc:
        yield svc


async def stored(service: Any, table: sa.Table, key: str, ident: uuid.UUID) -> dict[str, Any]:
    async with service.db.engine.connect() as conn:
        row = (await conn.execute(sa.select(table).where(table.c[key] == ident))).one()
    return dict(row._mapping)


def booking_story(b: BookingFacts, rnd: random.Random, *, twice: bool = True) -> list[Envelope]:
    """Every transition of one booking and its payment, each fact at its own time; with
    ``twice``, some kinds told twice (two messages, different times or details)."""
    t0 = now()

    def at(seconds: float) -> dict[str, Any]:
        return {"occurred_at": t0 + timedelta(seconds=seconds)}

    facts: list[Envelope] = [
        b.created(**at(0)),
        b.paid(**at(1)),
        b.confirmed(**at(2)),
        b.cancelled(reason="event_cancelled", **at(5)),
        b.refunded(**at(6)),
    ]
    if rnd.random() < 0.5:
        facts.append(b.expired(**at(rnd.choice((2, 3)))))  # a tie with confirmed, or later
    if rnd.random() < 0.5:
        facts.append(b.payment_failed(failure_reason="expired_card", **at(rnd.choice((1, 4)))))
    if not twice:
        return facts
    if rnd.random() < 0.5:  # a second cancellation, earlier or later, another reason
        facts.append(b.cancelled(reason="user_request", **at(rnd.choice((4, 7)))))
    if rnd.random() < 0.5:  # a second refund message, other amount: the first one counts
        facts.append(b.refunded(amount=Decimal("1.00"), **at(rnd.choice((5.5, 8)))))
    return facts


def domain_fold(delivered: list[Envelope]) -> tuple[BookingRecord, PaymentRecord]:
    """What the domain makes of the facts in their arrival order, redeliveries skipped (a
    detail such as a cancellation's reason comes from the fact applied last or first)."""
    booking = payment = None
    for fact in {f.message_id: f for f in delivered}.values():  # first deliveries, in order
        if isinstance(fact, PaymentDetails):
            payment = handlers._with_payment_fact(
                payment or handlers._payment_first_seen(fact), fact
            )  # type: ignore[arg-type]
        else:
            booking = handlers._with_booking_fact(
                booking or handlers._booking_first_seen(fact), fact
            )  # type: ignore[arg-type]
    assert booking is not None and payment is not None
    return booking, payment


def arrival(facts: list[Envelope], rnd: random.Random) -> list[Envelope]:
    """The facts shuffled, with some delivered twice (same message id)."""
    order = facts + rnd.sample(facts, k=rnd.randint(0, 3))
    rnd.shuffle(order)
    return order


@pytest.mark.parametrize("seed", range(12))
async def test_one_statement_stores_the_domains_fold_in_any_order(analytics, seed):
    rnd = random.Random(seed)
    b = EventFacts().booking(quantity=2)
    facts = booking_story(b, rnd)
    delivered = arrival(facts, rnd)
    firsts = [
        await consume_once(analytics.db, CONSUMER, f, handlers.record_fact) for f in delivered
    ]

    assert sum(firsts) == len(facts)  # each message applied once, redeliveries skipped
    booking, payment = domain_fold(delivered)
    assert await stored(analytics, bookings, "booking_id", b.booking_id) == asdict(booking)
    assert await stored(analytics, payments, "payment_id", b.payment_id) == asdict(payment)


@pytest.mark.parametrize("seed", range(4))
async def test_the_unit_of_work_path_stores_the_same(analytics, seed):
    """The SQLite (embedded) path, run here on PostgreSQL, agrees with the one statement."""
    rnd = random.Random(seed)
    b = EventFacts().booking()
    delivered = arrival(booking_story(b, rnd), rnd)
    for fact in delivered:
        await consume_once(analytics.db, CONSUMER, fact, handlers.record_fact.in_unit_of_work)
    booking, payment = domain_fold(delivered)
    assert await stored(analytics, bookings, "booking_id", b.booking_id) == asdict(booking)
    assert await stored(analytics, payments, "payment_id", b.payment_id) == asdict(payment)


async def test_facts_of_one_booking_applied_concurrently_lose_nothing(analytics):
    rnd = random.Random(99)
    b = EventFacts().booking()
    facts = booking_story(b, rnd, twice=False)  # the result may not depend on the order
    delivered = arrival(facts, rnd) * 2  # every message at least twice, all at once
    firsts = await asyncio.gather(
        *(consume_once(analytics.db, CONSUMER, f, handlers.record_fact) for f in delivered)
    )
    assert sum(firsts) == len(facts)
    booking, payment = domain_fold(facts)
    assert await stored(analytics, bookings, "booking_id", b.booking_id) == asdict(booking)
    assert await stored(analytics, payments, "payment_id", b.payment_id) == asdict(payment)


async def test_event_snapshots_keep_the_highest_version_and_redeliveries_change_nothing(analytics):
    event = EventFacts(title="v1")
    v1, v3, v2 = event.created(), event.cancelled(version=3, title="v3"), event.updated(title="v2")
    for fact in (v3, v1, v2, v3):
        await consume_once(analytics.db, CONSUMER, fact, handlers.record_fact)
    expected = handlers._event_record(v3)  # type: ignore[arg-type]
    assert await stored(analytics, events, "event_id", event.event_id) == asdict(expected)
    assert isinstance(expected, EventRecord)


async def test_a_duplicate_changes_nothing_even_when_the_row_moved_on(analytics):
    """A redelivered creation must not be merged again (its mark is in the inbox)."""
    b = EventFacts().booking()
    created = b.created()
    assert await consume_once(analytics.db, CONSUMER, created, handlers.record_fact)
    async with analytics.db.engine.begin() as conn:  # somebody changed the row since
        await conn.execute(
            bookings.update()
            .where(bookings.c.booking_id == b.booking_id)
            .values(created_at=None, status=None)
        )
    assert not await consume_once(analytics.db, CONSUMER, created, handlers.record_fact)
    row = await stored(analytics, bookings, "booking_id", b.booking_id)
    assert (row["created_at"], row["status"]) == (None, None)


async def test_a_fact_analytics_does_not_count_is_permanent_and_marks_nothing(analytics):
    assert isinstance(handlers.record_fact, OneStatementHandler)
    stray = UserRegistered(user_id=uuid.uuid4(), email="x@example.com", role="customer")
    with pytest.raises(PermanentFailure):
        await consume_once(analytics.db, CONSUMER, stray, handlers.record_fact)
    assert await inbox_marks(analytics, stray.message_id) == 0


# --- PostgreSQL (one statement) and SQLite (the same write after the mark) agree -------------


@pytest.fixture
async def sqlite_db(tmp_path):
    async with sqlite_database("analytics", tmp_path) as db:  # its migrations, on SQLite (embedded)
        yield db


async def rows_of(db: Database, table: sa.Table, key: str, idents: set[uuid.UUID]) -> list[Any]:
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(table).where(table.c[key].in_(idents)))).all()
    return sorted((dict(r._mapping) for r in rows), key=lambda r: str(r[key]))


async def test_postgresql_and_sqlite_store_the_same_rows_for_the_same_facts(analytics, sqlite_db):
    """Booking stories in shuffled order with redeliveries, and event snapshots out of order."""
    delivered: list[Envelope] = []
    keys: dict[str, set[uuid.UUID]] = {"event_id": set(), "booking_id": set(), "payment_id": set()}
    for seed in range(8):
        rnd = random.Random(seed)
        event = EventFacts(title=f"v1 {seed}")
        b = event.booking(quantity=seed + 1)
        delivered += arrival(booking_story(b, rnd), rnd)
        v1, v3, v2 = (
            event.created(),
            event.cancelled(version=3, title="v3"),
            event.updated(title="v2"),
        )
        delivered += rnd.sample([v1, v2, v3, v3], k=4)
        keys["event_id"].add(event.event_id)
        keys["booking_id"].add(b.booking_id)
        keys["payment_id"].add(b.payment_id)
    assert analytics.db.is_postgres and not sqlite_db.is_postgres
    firsts = {}
    for db in (analytics.db, sqlite_db):
        firsts[db] = [await consume_once(db, CONSUMER, f, handlers.record_fact) for f in delivered]
    assert firsts[analytics.db] == firsts[sqlite_db]
    for table, key in ((events, "event_id"), (bookings, "booking_id"), (payments, "payment_id")):
        on_postgres = await rows_of(analytics.db, table, key, keys[key])
        assert len(on_postgres) == len(keys[key])
        assert await rows_of(sqlite_db, table, key, keys[key]) == on_postgres, table.name
