"""A payment that arrives after its hold lapsed sells the seats again only as a hold could be
made at that moment: not once the event has started, nor outside the type's sales window, nor
for a type taken off sale. Otherwise the booking is cancelled and the money refunded. On both
databases (PostgreSQL's statements, SQLite's plain twin)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from apps.booking import handlers
from apps.booking.adapters import tables
from apps.booking.domain import RefundTooLarge
from contracts.messages import EventUpdated, TicketType
from kit.security import Principal
from kit.uow import UnitOfWork
from tests.booking.conftest import event_created, later, on_both_databases, payment_for, reserve

pytestmark = pytest.mark.integration

db = on_both_databases("late_payment_window")

TYPE = TicketType(ticket_type_id=uuid.uuid4(), name="Standard", price=Decimal("20.00"))


async def _run(database: Any, use_case: Any, *args: Any, **kw: Any) -> Any:
    async with UnitOfWork(database) as uow:
        out = await use_case(*args, uow, **kw)
        await uow.commit()
    return out


async def _lapsed_hold(d: Any) -> tuple[Any, Any]:
    """An event of 10 seats of one type, and a hold of 2 that the sweeper expired."""
    database, repo = d
    event = event_created(capacity=10, ticket_types=[TYPE])
    await _run(database, handlers.apply_event_snapshot, event, repository=repo)
    async with UnitOfWork(database) as uow:
        held = await reserve(uow, event, 2, repository=repo, hold_seconds=0)
        await uow.commit()
    if not database.is_postgres:
        await asyncio.sleep(1.1)  # SQLite's sweep compares whole seconds
    async with UnitOfWork(database) as uow:
        assert await handlers.expire_overdue_holds(uow, repository=repo, batch_size=10) == 1
        await uow.commit()
    return event, held


async def _outcome(d: Any, event: Any, held: Any) -> tuple[str, int]:
    database, repo = d
    await _run(database, handlers.confirm_booking, payment_for(held), repository=repo)
    b, i = tables.bookings.c, tables.inventory.c
    async with database.engine.connect() as conn:
        status = (await conn.execute(sa.select(b.status).where(b.id == held.id))).scalar_one()
        sold = (
            await conn.execute(sa.select(i.sold).where(i.event_id == event.event_id))
        ).scalar_one()
    return status, sold


def _past() -> datetime:
    return datetime.now(UTC) - timedelta(minutes=5)


async def test_a_late_payment_still_on_sale_sells_the_seats_again(db):
    event, held = await _lapsed_hold(db)
    assert await _outcome(db, event, held) == ("confirmed", 2)


async def test_a_late_payment_after_the_event_started_is_refunded(db):
    event, held = await _lapsed_hold(db)
    started = later(event, EventUpdated, 2, starts_at=_past())
    await _run(db[0], handlers.apply_event_snapshot, started, repository=db[1])
    assert await _outcome(db, event, held) == ("cancelled", 0)


@pytest.mark.parametrize(
    "change",
    [
        {"sales_end": "past"},  # the type's sales closed
        {"removed": True},  # the type was taken off sale (missing from the snapshot)
    ],
)
async def test_a_late_payment_for_a_type_no_longer_on_sale_is_refunded(db, change):
    event, held = await _lapsed_hold(db)
    if change.get("removed"):
        other = TicketType(ticket_type_id=uuid.uuid4(), name="Other", price=Decimal("20.00"))
        types = [other]
    else:
        types = [TYPE.model_copy(update={"sales_end": _past()})]
    changed = later(event, EventUpdated, 2, ticket_types=types)
    await _run(db[0], handlers.apply_event_snapshot, changed, repository=db[1])
    assert await _outcome(db, event, held) == ("cancelled", 0)


async def test_a_payment_for_a_cancelled_booking_is_refunded_once_and_shown(db):
    """The booking records the refund of everything paid: it shows, and an organizer cannot
    ask for the same money again (payments would refuse it and the booking show a failure)."""
    database, repo = db
    event = event_created(capacity=10, ticket_types=[TYPE])
    await _run(database, handlers.apply_event_snapshot, event, repository=repo)
    async with UnitOfWork(database) as uow:
        held = await reserve(uow, event, 2, repository=repo)
        await uow.commit()
    buyer = Principal(held.user_id, "customer", {})
    await _run(database, handlers.cancel_booking, repository=repo, booking_id=held.id, actor=buyer)

    payment = payment_for(held)
    await _run(database, handlers.confirm_booking, payment, repository=repo)
    await _run(database, handlers.confirm_booking, payment, repository=repo)  # redelivered

    [[refund]] = (await handlers.refunds_of(database, [held.id])).values()
    assert (refund.amount, refund.status, refund.reason) == (held.amount, "pending", "user_request")
    async with database.engine.connect() as conn:
        asked = [
            json.loads(r.payload) if isinstance(r.payload, str) else r.payload
            for r in await conn.execute(
                sa.text("SELECT payload FROM outbox WHERE routing_key = 'refund_requested'")
            )
        ]
    assert [
        (a["refund_id"], Decimal(a["amount"])) for a in asked if a["booking_id"] == str(held.id)
    ] == [(str(refund.id), held.amount)]
    admin = Principal(uuid.uuid4(), "admin", {})
    with pytest.raises(RefundTooLarge):
        await _run(
            database, handlers.refund_booking, repository=repo, booking_id=held.id, actor=admin
        )
