"""Fixtures of the booking tests: a running booking service and helpers to feed it the events
service's messages the way the bus would (through its own subscribers)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from apps.booking import handlers
from apps.booking.adapters.repository import BookingRepository
from apps.booking.adapters.repository_sqlite import SqliteBookingRepository
from apps.booking.bootstrap import build
from apps.booking.domain import Booking
from contracts.messages import (
    EventCancelled,
    EventCreated,
    EventUpdated,
    PaymentConfirmed,
    PaymentFailed,
)
from kit.db import Database
from kit.security import Principal
from kit.uow import UnitOfWork
from tests.conftest import http_client, service_fixture

# The broker and database helpers every service's tests use, importable from here as before.
from tests.support.bus import bound_queue as bound_queue, publish as publish
from tests.support import messages
from tests.support.db import postgres_database, sqlite_database
from tests.support.db import rows as rows, scalar as scalar


def on_both_databases(name: str) -> Any:
    """A fixture, run twice: a PostgreSQL database of its own (named after ``name``) with
    BookingRepository, then a SQLite one (the embedded mode) with SqliteBookingRepository; both
    made by the service's migrations. Use as ``db = on_both_databases("vouchers")``."""

    @pytest.fixture(params=["postgresql", "sqlite"])
    async def db(request: Any, tmp_path: Path) -> AsyncIterator[tuple[Database, type]]:
        if request.param == "postgresql":
            async with postgres_database("booking", name) as d:
                yield d, BookingRepository
        else:
            async with sqlite_database("booking", tmp_path) as d:
                yield d, SqliteBookingRepository

    return db


def event_created(
    capacity: int = 10, price: str = "20.00", currency: str = "EUR", **over: Any
) -> EventCreated:
    return messages.event_created(
        capacity=capacity, price=Decimal(price), currency=currency, **over
    )


def later(event: EventCreated, message: type, version: int, **changes: Any) -> Any:
    """The same event's snapshot as a later message (EventUpdated / EventCancelled)."""
    data = event.model_dump(
        exclude={"message_id", "occurred_at", "correlation_id", "causation_id", "message_type"}
    )
    data.update(changes, version=version)
    if message is EventCancelled:
        data["status"] = "cancelled"
    return message(**data)


async def feed(service: Any, msg: Any) -> None:
    """Deliver an events-service message to booking's subscriber (its consumer use case runs
    once per message id), as the broker would."""
    name = {EventCancelled: "event_cancelled", EventUpdated: "event_updated"}.get(
        type(msg), "event_created"
    )
    await service.subscribers[name](msg)


async def reserve(uow: UnitOfWork, event: EventCreated, quantity: int = 2, **over: Any) -> Booking:
    """A new customer's hold of ``quantity`` seats, through the use case itself (no HTTP, no
    sold-out memory), in ``uow``; ``over``: other arguments of ``reserve_seats``."""
    return await handlers.reserve_seats(
        uow,
        **{
            "repository": BookingRepository,
            "user": Principal(uuid.uuid4(), "customer", {}),
            "event_id": event.event_id,
            "quantity": quantity,
            "hold_seconds": 600,
            "max_per_booking": 10,
            "max_held_per_user": 20,
            **over,
        },
    )


async def reserved(service: Any, event: EventCreated, quantity: int = 2) -> Booking:
    """``reserve`` in a unit of work of its own, committed."""
    async with UnitOfWork(service.db) as uow:
        b = await reserve(uow, event, quantity)
        await uow.commit()
    return b


def payment_for(
    b: Booking | dict[str, Any],
    cls: type[PaymentConfirmed | PaymentFailed] = PaymentConfirmed,
    **over: Any,
) -> Any:
    """The payments service's word on booking ``b`` (the domain's ``Booking``, or the booking as
    the API shows it, JSON, which names its event too): paid (``PaymentConfirmed``) or declined
    (``PaymentFailed``), naming the booking's user, amount and currency unless ``over`` says
    otherwise."""
    if isinstance(b, dict):
        of = {k: b[k] for k in ("user_id", "event_id", "amount", "currency")}
        of["booking_id"] = b["id"]
    else:
        of = {"user_id": b.user_id, "amount": b.amount, "currency": b.currency, "booking_id": b.id}
    fields: dict[str, Any] = {
        **of,
        "amount": Decimal(of["amount"]),
        "payment_id": uuid.uuid4(),
        "producer": "payments",
    }
    if cls is PaymentConfirmed:
        fields["provider_reference"] = "sim"
    else:
        fields["failure_reason"] = "card_declined"
    return cls(**{**fields, **over})


# The booking service against the real broker and database; sweeper off (tests drive it).
booking = service_fixture(build, booking_sweep_interval_seconds=0)


@pytest.fixture
async def client(booking):
    async with http_client(booking) as c:
        yield c


# A booking service whose holds lapse at once (BOOKING_HOLD_SECONDS=0); sweeper off.
short_holds = service_fixture(build, booking_hold_seconds=0, booking_sweep_interval_seconds=0)


@pytest.fixture
async def short_client(short_holds):
    async with http_client(short_holds) as c:
        yield c


def book_body(event: EventCreated, quantity: int = 1) -> dict[str, Any]:
    return {"event_id": str(event.event_id), "quantity": quantity}


async def collect(queue: Any, n: int, timeout: float = 10.0) -> list[Any]:
    """Wait for ``n`` messages on ``queue``; returns (routing_key, parsed JSON body) pairs."""
    import json

    from tests.support.waiting import eventually

    got: list[Any] = []

    async def probe() -> int:
        while (m := await queue.get(no_ack=True, fail=False)) is not None:
            got.append((m.routing_key, json.loads(m.body)))
        return len(got)

    await eventually(probe, timeout=timeout, until=lambda k: k >= n)
    return got


async def outbox_drained(service: Any) -> bool:
    return await scalar(service, "SELECT count(*) FROM outbox") == 0
