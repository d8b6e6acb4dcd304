"""A refund that payments could not make (``refund_failed``) after the booking was cancelled,
on PostgreSQL and on SQLite (the embedded mode): the booking keeps showing it as failed, even
behind later refunds, and its event's organizer can ask for the money again — never more, in
all, than was paid. Through the use cases and the booking view the routes answer."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from apps.booking import handlers
from apps.booking.domain import Booking, RefundTooLarge
from apps.booking.schemas import BookingView
from contracts.messages import EventCancelled, RefundFailed
from kit.db import Database
from kit.security import Principal
from kit.uow import UnitOfWork
from tests.booking.conftest import event_created, later, on_both_databases, payment_for

pytestmark = pytest.mark.integration

db = on_both_databases("failed_refunds")


class Shop:
    """One event on sale at 10.00 a seat and its organizer, in one database."""

    def __init__(self, db: Database, repository: type, **event: Any) -> None:
        self.db, self.repository = db, repository
        self.event = event_created(capacity=10, price="10.00", **event)
        self.organizer = Principal(self.event.organizer_id, "organizer", {})

    async def run(self, use_case: Any, *args: Any, **kw: Any) -> Any:
        async with UnitOfWork(self.db) as uow:
            result = await use_case(*args, uow, **kw) if args else await use_case(uow, **kw)
            await uow.commit()
            return result

    async def open(self) -> None:
        await self.run(handlers.apply_event_snapshot, self.event, repository=self.repository)

    async def paid(self, quantity: int) -> Booking:
        b = await self.run(
            handlers.reserve_seats,
            repository=self.repository,
            user=Principal(uuid.uuid4(), "customer", {}),
            event_id=self.event.event_id,
            quantity=quantity,
            hold_seconds=600,
            max_per_booking=10,
            max_held_per_user=20,
        )
        await self.run(handlers.confirm_booking, payment_for(b), repository=self.repository)
        return await self.booking(b.id)

    async def booking(self, booking_id: uuid.UUID) -> Booking:
        async with self.db.read() as conn:
            got = await self.repository(conn).get(booking_id)
        assert got is not None
        return got

    async def refund(self, b: Booking, amount: str | None = None) -> Booking:
        return await self.run(  # type: ignore[no-any-return]
            handlers.refund_booking,
            repository=self.repository,
            booking_id=b.id,
            actor=self.organizer,
            amount=None if amount is None else Decimal(amount),
        )

    async def asked(self, b: Booking) -> list[dict[str, Any]]:
        """The refund_requested commands booking wrote for ``b``."""
        async with self.db.engine.connect() as conn:
            rows = await conn.execute(
                sa.text("SELECT payload FROM outbox WHERE routing_key = 'refund_requested'")
            )
            payloads = [json.loads(p) if isinstance(p, str) else p for (p,) in rows]
        return [p for p in payloads if p["booking_id"] == str(b.id)]

    async def fails(self, b: Booking, asked: dict[str, Any]) -> None:
        """Payments' answer: this refund was not made."""
        msg = RefundFailed(
            payment_id=b.payment_id,
            booking_id=b.id,
            user_id=b.user_id,
            event_id=b.event_id,
            amount=Decimal(asked["amount"]),
            currency=b.currency,
            reason=asked["reason"],
            refund_id=uuid.UUID(asked["refund_id"]),
            failure_reason="provider_declined",
            producer="payments",
        )
        await self.run(handlers.fail_refund, msg)

    async def shown(self, b: Booking) -> dict[str, Any]:
        """The booking as GET /booking/{id} answers it."""
        refunds = (await handlers.refunds_of(self.db, [b.id])).get(b.id, [])
        return BookingView.with_refunds(await self.booking(b.id), refunds).model_dump(mode="json")

    async def total_asked(self, b: Booking) -> Decimal:
        async with self.db.engine.connect() as conn:
            total = (
                await conn.execute(
                    sa.text("SELECT refund_requested_total FROM bookings WHERE id = :b"),
                    {"b": b.id if self.db.is_postgres else b.id.hex},
                )
            ).scalar_one()
        return Decimal(str(total))


def refunds_of(view: dict[str, Any]) -> list[tuple[str, str]]:
    return [(r["amount"], r["status"]) for r in view["refunds"]]


async def test_a_failed_refund_behind_a_later_one_stays_visible_and_can_be_asked_again(
    db: tuple[Database, type],
) -> None:
    shop = Shop(*db)
    await shop.open()
    b = await shop.paid(4)  # 40.00
    await shop.refund(b, "10.00")  # the organizer gives part back...
    # ... and before payments answers, the event is cancelled: the rest goes back too
    await shop.run(
        handlers.cancel_event_bookings,
        later(shop.event, EventCancelled, 2),
        repository=shop.repository,
    )
    asked = {a["reason"]: a for a in await shop.asked(b)}
    part, rest = asked["organizer_refund"], asked["event_cancelled"]
    assert (part["amount"], rest["amount"]) == ("10.00", "30.00")

    await shop.fails(b, part)  # the first one could not be made

    view = await shop.shown(b)
    assert view["status"] == "cancelled"
    # the failure is on the booking, not hidden behind the refund asked after it
    assert refunds_of(view) == [("10.00", "failed"), ("30.00", "pending")]
    assert (view["refund"]["amount"], view["refund"]["status"]) == ("30.00", "pending")
    assert await shop.total_asked(b) == Decimal("30.00")

    # the organizer asks for what did not go back, once: never more than was paid in all
    await shop.refund(b)
    assert sorted(a["amount"] for a in await shop.asked(b)) == ["10.00", "10.00", "30.00"]
    assert refunds_of(await shop.shown(b)) == [
        ("10.00", "failed"),
        ("30.00", "pending"),
        ("10.00", "pending"),
    ]
    assert await shop.total_asked(b) == Decimal("40.00")
    with pytest.raises(RefundTooLarge):
        await shop.refund(b, "0.01")


async def test_a_buyers_refund_that_failed_after_their_cancellation_can_be_asked_again(
    db: tuple[Database, type],
) -> None:
    shop = Shop(
        *db,
        refund_policy={"self_service": True, "deadline_hours_before_start": 1, "fee_percent": "10"},
    )
    await shop.open()
    b = await shop.paid(2)  # 20.00
    await shop.run(
        handlers.cancel_booking,
        repository=shop.repository,
        booking_id=b.id,
        actor=Principal(b.user_id, "customer", {}),
    )
    [asked] = await shop.asked(b)
    assert asked["amount"] == "18.00"  # the policy keeps 10%

    await shop.fails(b, asked)

    view = await shop.shown(b)
    assert view["refund"] == {"amount": "18.00", "fee": "2.00", "status": "failed"}
    assert await shop.total_asked(b) == Decimal("0.00")
    # the organizer asks again for what the buyer was due
    await shop.refund(b, "18.00")
    assert [a["amount"] for a in await shop.asked(b)] == ["18.00", "18.00"]
    assert refunds_of(await shop.shown(b)) == [("18.00", "failed"), ("18.00", "pending")]
    assert await shop.total_asked(b) == Decimal("18.00")
    with pytest.raises(RefundTooLarge):
        await shop.refund(b, "2.01")  # the fee kept is all that is left
