"""A charge's outcome in one statement (``PaymentRepository.settle`` on PostgreSQL: the payment
row, the due's new status and the outbox row as data-modifying CTEs) agrees with its plain path
(the three writes one by one, what SQLite runs).

The same dues, the same charges (a succeeded and a declined card) through the real use case
(``process_payment``, with the card simulator) on a real PostgreSQL database and a real SQLite
database built by the service's own migrations: the same payment rows, due statuses and outbox
rows on both, and a due nobody paid is left untouched on both.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from apps.payments import handlers
from apps.payments.adapters.provider import CardNetworkSimulator
from apps.payments.adapters.tables import booking_dues, payments
from apps.payments.entrypoints.messages import BOOKING_CREATED
from contracts.messages import BookingCreated
from kit.consuming import consume_once
from kit.db import Database
from kit.outbox import OUTBOX
from kit.uow import run_in_unit_of_work
from tests.payments.conftest import booking_created
from tests.support.db import postgres_database, sqlite_database

pytestmark = pytest.mark.integration


@pytest.fixture
async def postgres() -> AsyncIterator[Database]:
    async with postgres_database("payments", "settle") as db:
        yield db


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[Database]:
    async with sqlite_database("payments", tmp_path) as db:  # its migrations, on SQLite (embedded)
        yield db


# what each run makes anew: the ids of the payment and of its message, the clock, and the
# simulator's reference for the charge
_MADE_PER_RUN = {
    "id",
    "payment_id",
    "message_id",
    "occurred_at",
    "created_at",
    "updated_at",
    "provider_reference",
}


def _plain(mapping: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(mapping).items() if k not in _MADE_PER_RUN}


async def charge_all(db: Database, dues: list[BookingCreated], cards: list[str]) -> None:
    """Record every due (booking's ``booking_created``), then pay the first ones with ``cards``."""
    for created in dues:
        assert await consume_once(db, BOOKING_CREATED.name, created, handlers.record_booking_due)
    provider = CardNetworkSimulator(db.url)
    try:
        for created, card in zip(dues, cards, strict=False):
            await run_in_unit_of_work(
                db,
                handlers.process_payment,
                provider=provider,
                booking_id=created.booking_id,
                user_id=created.user_id,
                token=card,
            )
    finally:
        await provider.close()


async def stored(db: Database, dues: list[BookingCreated]) -> dict[str, Any]:
    order = [d.booking_id for d in dues]
    async with db.read() as conn:
        due_rows = (await conn.execute(sa.select(booking_dues))).all()
        payment_rows = (await conn.execute(sa.select(payments))).all()
        outbox_rows = (await conn.execute(sa.select(OUTBOX))).all()
    # each paid due names its payment, and each payment's message names it too
    paid = {r.id for r in payment_rows}
    assert {r.payment_id for r in due_rows if r.status != "open"} == paid
    assert {uuid.UUID(r.payload["payment_id"]) for r in outbox_rows} == paid
    return {
        "dues": sorted(
            (_plain(r._mapping) for r in due_rows), key=lambda r: order.index(r["booking_id"])
        ),
        "payments": sorted(
            (_plain(r._mapping) for r in payment_rows), key=lambda r: order.index(r["booking_id"])
        ),
        "outbox": sorted(
            (
                {
                    "routing_key": r.routing_key,
                    "message_type": r.message_type,
                    "payload": _plain(r.payload),
                    "headers": r.headers,
                }
                for r in outbox_rows
            ),
            key=lambda m: order.index(uuid.UUID(m["payload"]["booking_id"])),
        ),
    }


async def test_a_succeeded_and_a_declined_charge_leave_the_same_rows_on_postgresql_and_sqlite(
    postgres: Database, sqlite: Database
) -> None:
    assert postgres.is_postgres and not sqlite.is_postgres
    dues = [booking_created() for _ in range(3)]
    cards = ["tok_visa", "tok_chargeDeclined"]  # the third due is never paid
    await charge_all(postgres, dues, cards)
    await charge_all(sqlite, dues, cards)

    on_postgres, on_sqlite = await stored(postgres, dues), await stored(sqlite, dues)
    assert [d["status"] for d in on_postgres["dues"]] == ["paid", "payment_failed", "open"]
    assert [(p["status"], p["failure_reason"]) for p in on_postgres["payments"]] == [
        ("succeeded", None),
        ("failed", "card_declined"),
    ]
    assert [m["routing_key"] for m in on_postgres["outbox"]] == [
        "payment_confirmed",
        "payment_failed",
    ]
    assert on_sqlite["dues"] == on_postgres["dues"]
    assert on_sqlite["payments"] == on_postgres["payments"]
    assert on_sqlite["outbox"] == on_postgres["outbox"]
