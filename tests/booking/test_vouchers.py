"""Vouchers at booking: the discount frozen in the booking, and the count of uses taken in the
statement that holds the seats (all or nothing), given back by an expiry or an unpaid
cancellation, never by a paid booking's. The use cases run on both databases (PostgreSQL's one
statement and trigger, SQLite's plain twin); the API and the concurrency on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from apps.booking import handlers
from apps.booking.adapters import tables
from apps.booking.adapters.refunds import booking_refunds
from apps.booking.adapters.repository import BookingRepository
from apps.booking.domain import Booking, VoucherExhausted, VoucherUnknown
from contracts.messages import (
    EventCreated,
    PaymentFailed,
    TicketType,
    VoucherCreated,
    VoucherUpdated,
)
from kit.db import Database
from kit.security import Principal
from kit.uow import UnitOfWork
from tests.support.messages import voucher_for
from tests.booking.conftest import (
    on_both_databases,
    bound_queue,
    collect,
    event_created,
    feed,
    payment_for,
    scalar,
)
from tests.support.tokens import bearer, mint

pytestmark = pytest.mark.integration


def types_event() -> tuple[EventCreated, TicketType, TicketType]:
    early = TicketType(ticket_type_id=uuid.uuid4(), name="Early", price=Decimal("10.00"))
    vip = TicketType(ticket_type_id=uuid.uuid4(), name="VIP", price=Decimal("50.00"))
    return event_created(capacity=50, ticket_types=[early, vip]), early, vip


# --- the use cases on both databases -----------------------------------------------------------


db = on_both_databases("vouchers")


async def _run(database: Database, use_case: Any, *args: Any, **kw: Any) -> Any:
    async with UnitOfWork(database) as uow:
        out = await use_case(*args, uow, **kw) if args else await use_case(uow, **kw)
        await uow.commit()
    return out


async def _hold(
    d: tuple[Database, type],
    event: EventCreated,
    code: str | None,
    *,
    quantity: int = 2,
    lines: list[tuple[uuid.UUID, int]] | None = None,
    hold_seconds: int = 600,
) -> Booking:
    database, repo = d
    return await _run(  # type: ignore[no-any-return]
        database,
        handlers.reserve_seats,
        repository=repo,
        user=Principal(uuid.uuid4(), "customer", {}),
        event_id=event.event_id,
        quantity=None if lines else quantity,
        lines=lines,
        voucher_code=code,
        hold_seconds=hold_seconds,
        max_per_booking=10,
        max_held_per_user=20,
    )


async def _one(database: Database, stmt: Any) -> Any:
    async with database.engine.connect() as conn:
        return (await conn.execute(stmt)).scalar_one()


async def _used(database: Database, event: EventCreated, code: str = "SAVE10") -> int:
    v = tables.vouchers.c
    return await _one(  # type: ignore[no-any-return]
        database, sa.select(v.used).where(v.event_id == event.event_id, v.code == code)
    )


async def _held(database: Database, event: EventCreated, column: str = "held") -> int:
    i = tables.inventory.c
    return await _one(database, sa.select(i[column]).where(i.event_id == event.event_id))  # type: ignore[no-any-return]


async def _expire(d: tuple[Database, type]) -> int:
    """Sweep lapsed holds (SQLite's clock for the sweep has whole seconds: wait one)."""
    database, repo = d
    if not database.is_postgres:
        await asyncio.sleep(1.1)
    return await _run(database, handlers.expire_overdue_holds, repository=repo, batch_size=10)  # type: ignore[no-any-return]


async def _setup(d: tuple[Database, type], event: EventCreated, *vouchers: Any) -> None:
    database, repo = d
    await _run(database, handlers.apply_event_snapshot, event, repository=repo)
    for v in vouchers:
        await _run(database, handlers.apply_voucher_snapshot, v, repository=repo)


async def _with_save10(d: tuple[Database, type], max_uses: int) -> EventCreated:
    """An event of 50 seats at 20.00, known with its voucher SAVE10 (10 % off, ``max_uses``)."""
    event = event_created(capacity=50)
    await _setup(d, event, voucher_for(event, max_uses=max_uses))
    return event


async def test_percent_off_applies_to_eligible_lines_only(db):
    event, early, vip = types_event()
    await _setup(db, event, voucher_for(event, ticket_type_ids=[vip.ticket_type_id]))

    b = await _hold(db, event, "save10", lines=[(early.ticket_type_id, 2), (vip.ticket_type_id, 1)])

    # 2 x 10.00 + 50.00 = 70.00; 10 % of the VIP line only
    assert (b.discount, b.amount, b.voucher_code) == (Decimal("5.00"), Decimal("65.00"), "SAVE10")
    stored = (await rows_of(db[0], "SELECT amount, discount, voucher_code FROM bookings"))[0]
    assert tuple(stored) == (Decimal("65.00"), Decimal("5.00"), "SAVE10")
    assert await _used(db[0], event) == 1


async def test_amount_off_is_capped_at_the_eligible_total(db):
    event, early, vip = types_event()
    await _setup(
        db,
        event,
        voucher_for(
            event,
            "BIG",
            percent_off=None,
            amount_off=Decimal("25.00"),
            ticket_type_ids=[early.ticket_type_id],
        ),
    )
    b = await _hold(db, event, "BIG", lines=[(early.ticket_type_id, 2), (vip.ticket_type_id, 1)])
    assert (b.discount, b.amount) == (Decimal("20.00"), Decimal("50.00"))

    only_early = await _hold(db, event, "BIG", lines=[(early.ticket_type_id, 1)])
    assert (only_early.discount, only_early.amount) == (Decimal("10.00"), Decimal("0.00"))


async def test_unknown_and_exhausted_vouchers_hold_nothing(db):
    event = event_created(capacity=50)
    await _setup(
        db,
        event,
        voucher_for(event, "ONCE", max_uses=1),
        voucher_for(event, "OVER", valid_until=datetime.now(UTC) - timedelta(minutes=1)),
    )
    with pytest.raises(VoucherUnknown):
        await _hold(db, event, "NOPE")
    await _hold(db, event, "ONCE")
    held = await _held(db[0], event)
    with pytest.raises(VoucherExhausted):
        await _hold(db, event, "ONCE")
    with pytest.raises(VoucherExhausted):
        await _hold(db, event, "OVER")
    assert await _held(db[0], event) == held == 2
    assert await _used(db[0], event, "ONCE") == 1
    assert await _used(db[0], event, "OVER") == 0


async def test_expiry_and_unpaid_cancellation_give_the_use_back_paid_keeps_it(db):
    database, repo = db
    event = await _with_save10(db, max_uses=3)

    lapsing = await _hold(db, event, "SAVE10", hold_seconds=0)
    cancelled = await _hold(db, event, "SAVE10")
    paid = await _hold(db, event, "SAVE10")
    assert await _used(database, event) == 3
    with pytest.raises(VoucherExhausted):
        await _hold(db, event, "SAVE10")

    assert await _expire(db) == 1
    assert await _used(database, event) == 2
    admin = Principal(uuid.uuid4(), "admin", {})
    await _run(
        database, handlers.cancel_booking, repository=repo, booking_id=cancelled.id, actor=admin
    )
    assert await _used(database, event) == 1
    await _run(database, handlers.confirm_booking, payment_for(paid), repository=repo)
    await _run(database, handlers.cancel_booking, repository=repo, booking_id=paid.id, actor=admin)
    assert await _used(database, event) == 1  # paid: the use stays taken
    # the refund gives back what was paid: the amount after the discount (2 x 20.00 - 10 %)
    r = booking_refunds.c
    refunded = await _one(database, sa.select(r.amount).where(r.booking_id == paid.id))
    assert (paid.amount, refunded) == (Decimal("36.00"), Decimal("36.00"))
    assert lapsing.voucher_code == "SAVE10"


async def test_a_declined_payment_gives_the_use_back(db):
    database, repo = db
    event = await _with_save10(db, max_uses=1)
    b = await _hold(db, event, "SAVE10")
    await _run(database, handlers.fail_booking, payment_for(b, PaymentFailed), repository=repo)
    assert await _used(database, event) == 0
    await _hold(db, event, "SAVE10")  # usable again


async def test_a_late_payment_retakes_the_use_only_if_one_is_left(db):
    database, repo = db
    event = await _with_save10(db, max_uses=1)
    first = await _hold(db, event, "SAVE10", hold_seconds=0)
    await _expire(db)
    assert await _used(database, event) == 0
    await _run(database, handlers.confirm_booking, payment_for(first), repository=repo)
    assert await _used(database, event) == 1  # re-taken with the seats
    assert await status_of(database, first.id) == "confirmed"

    with pytest.raises(VoucherExhausted):  # the paid booking holds the only use
        await _hold(db, event, "SAVE10")


async def rows_of(database: Database, sql: str) -> list[Any]:
    async with database.engine.connect() as conn:
        return list((await conn.execute(sa.text(sql))).all())


async def status_of(database: Database, booking_id: uuid.UUID) -> str:
    b = tables.bookings.c
    return await _one(database, sa.select(b.status).where(b.id == booking_id))  # type: ignore[no-any-return]


async def test_a_late_payment_without_a_use_left_is_refunded(db):
    database, repo = db
    event = await _with_save10(db, max_uses=1)
    late = await _hold(db, event, "SAVE10", hold_seconds=0)
    await _expire(db)
    await _hold(db, event, "SAVE10")  # took the use back in the meantime
    held = await _held(database, event)

    await _run(database, handlers.confirm_booking, payment_for(late), repository=repo)

    assert await status_of(database, late.id) == "cancelled"
    assert await _used(database, event) == 1
    assert await _held(database, event) == held  # nothing re-taken
    assert await _held(database, event, "sold") == 0


async def test_a_newer_snapshot_changes_the_terms_not_the_uses(db):
    database, repo = db
    event = event_created(capacity=50)
    first = voucher_for(event, max_uses=2)
    await _setup(db, event, first)
    await _hold(db, event, "SAVE10")
    newer = VoucherUpdated(
        **{
            **first.model_dump(exclude={"message_id", "message_type"}),
            "version": 2,
            "percent_off": Decimal("50"),
        }
    )
    await _run(database, handlers.apply_voucher_snapshot, newer, repository=repo)
    await _run(database, handlers.apply_voucher_snapshot, first, repository=repo)  # older: lost
    b = await _hold(db, event, "SAVE10")
    assert b.discount == Decimal("20.00")  # 50 % of 2 x 20.00
    assert await _used(database, event) == 2


# --- through the API, and at once, on PostgreSQL -----------------------------------------------


async def feed_voucher(service: Any, msg: VoucherCreated) -> None:
    await service.subscribers["voucher_created"](msg)


async def on_sale_with_voucher(
    booking: Any, code: str, *, capacity: int = 10, **voucher: Any
) -> EventCreated:
    """An event (20.00 a seat) that booking knows, with its voucher ``code``, both fed as the
    bus would."""
    event = event_created(capacity=capacity)
    await feed(booking, event)
    await feed_voucher(booking, voucher_for(event, code, **voucher))
    return event


async def book_with(client: Any, event: EventCreated, code: str, *, quantity: int) -> Any:
    """An order with ``code`` by a new user, through the API."""
    return await client.post(
        "/booking/create",
        json={"event_id": str(event.event_id), "quantity": quantity, "voucher_code": code},
        headers=bearer(mint()),
    )


async def _published(queue: Any, routing_key: str, booking_id: str) -> dict[str, Any]:
    """The message ``routing_key`` that booking published about ``booking_id``."""
    for key, body in await collect(queue, 1):
        if key == routing_key and body["booking_id"] == booking_id:
            return body  # type: ignore[no-any-return]
    raise AssertionError(f"no {routing_key} for {booking_id}")


async def test_the_booking_shows_the_discount_and_its_message_the_use(booking, client, amqp):
    queue = await bound_queue(amqp, "booking_created")
    event = await on_sale_with_voucher(
        booking, "TENOFF", percent_off=None, amount_off=Decimal("10.00")
    )

    resp = await book_with(client, event, "tenoff", quantity=2)

    assert resp.status_code == 201, resp.text
    b = resp.json()
    assert (b["amount"], b["discount"], b["voucher_code"]) == ("30.00", "10.00", "TENOFF")
    created = await _published(queue, "booking_created", b["id"])
    assert (created["discount"], created["voucher_code"], created["voucher_use"]) == (
        "10.00",
        "TENOFF",
        1,
    )


async def test_unknown_and_exhausted_codes_answer_422_and_409(booking, client):
    event = await on_sale_with_voucher(booking, "ONE", max_uses=1)
    body = {"event_id": str(event.event_id), "quantity": 1}

    unknown = await client.post(
        "/booking/create", json={**body, "voucher_code": "NONE"}, headers=bearer(mint())
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "body.voucher_code"
    ok = await client.post(
        "/booking/create", json={**body, "voucher_code": "ONE"}, headers=bearer(mint())
    )
    assert ok.status_code == 201
    used_up = await client.post(
        "/booking/create", json={**body, "voucher_code": "ONE"}, headers=bearer(mint())
    )
    assert used_up.status_code == 409
    assert used_up.json()["type"].endswith("/voucher-exhausted")
    assert (
        await scalar(booking, "SELECT held FROM inventory WHERE event_id = :e", e=event.event_id)
        == 1
    )


async def test_max_uses_is_never_exceeded_by_simultaneous_orders(booking, client):
    """max_uses 5, 40 orders at once (each another user): exactly 5 hold with the voucher."""
    event = await on_sale_with_voucher(booking, "RUSH", capacity=200, max_uses=5)

    async def one() -> int:
        return (await book_with(client, event, "RUSH", quantity=2)).status_code

    statuses = await asyncio.gather(*(one() for _ in range(40)))

    assert sorted(statuses).count(201) == 5, statuses
    assert set(statuses) == {201, 409}
    assert (
        await scalar(booking, "SELECT used FROM vouchers WHERE event_id = :e", e=event.event_id)
        == 5
    )
    assert (
        await scalar(booking, "SELECT held FROM inventory WHERE event_id = :e", e=event.event_id)
        == 10
    )
    assert (
        await scalar(
            booking,
            "SELECT count(*) FROM bookings WHERE event_id = :e AND voucher_code = 'RUSH'",
            e=event.event_id,
        )
        == 5
    )


async def test_a_declined_payment_in_one_statement_gives_the_use_back(booking, client, amqp):
    """The payment_failed subscriber's one-statement path (save_once) moves the use too."""
    queue = await bound_queue(amqp, "booking_cancelled")
    event = await on_sale_with_voucher(booking, "ONE", max_uses=1)
    resp = await book_with(client, event, "ONE", quantity=1)
    assert resp.status_code == 201, resp.text
    b = resp.json()
    declined = payment_for(b, PaymentFailed)
    assert await handlers.fail_pending(
        booking.db, "test.payment_failed", declined, repository=BookingRepository
    )
    assert (
        await scalar(booking, "SELECT used FROM vouchers WHERE event_id = :e", e=event.event_id)
        == 0
    )
    assert await scalar(booking, "SELECT count(*) FROM seat_moves") == 0
    cancelled = await _published(queue, "booking_cancelled", b["id"])
    assert (cancelled["voucher_code"], cancelled["voucher_use"]) == ("ONE", -1)
