"""Fixtures of the booking tests: a running booking service and helpers to feed it the events
service's messages the way the bus would (through its own consumers' use cases)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from apps.booking import handlers
from apps.booking.bootstrap import build
from apps.booking.entrypoints.messages import EVENT_CANCELLED, EVENT_CREATED, EVENT_UPDATED
from apps.kit.messaging import consume_once
from contracts.messages import EventCancelled, EventCreated, EventUpdated
from tests.conftest import http_client


def event_created(capacity: int = 10, price: str = "20.00", currency: str = "EUR", **over: Any) -> EventCreated:
    fields: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "organizer_id": uuid.uuid4(),
        "title": "PyCon Lisbon",
        "venue": "Altice Arena",
        "starts_at": datetime.now(UTC) + timedelta(days=30),
        "capacity": capacity,
        "price": Decimal(price),
        "currency": currency,
        "status": "scheduled",
        "version": 1,
        "producer": "events",
    }
    fields.update(over)
    return EventCreated(**fields)


def later(event: EventCreated, message: type, version: int, **changes: Any) -> Any:
    """The same event's snapshot as a later message (EventUpdated / EventCancelled)."""
    data = event.model_dump(exclude={"message_id", "occurred_at", "correlation_id", "causation_id", "message_type"})
    data.update(changes, version=version)
    if message is EventCancelled:
        data["status"] = "cancelled"
    return message(**data)


async def feed(service: Any, msg: Any) -> bool:
    """Deliver an events-service message to booking's consumer use case, once per message id."""
    if isinstance(msg, EventCancelled):
        return await consume_once(service.db, EVENT_CANCELLED.name, msg, handlers.cancel_event_bookings)
    queue = EVENT_UPDATED if isinstance(msg, EventUpdated) else EVENT_CREATED
    return await consume_once(service.db, queue.name, msg, handlers.apply_event_snapshot)


async def scalar(service: Any, sql: str, **params: Any) -> Any:
    async with service.db.engine.connect() as conn:
        return (await conn.execute(sa.text(sql), params)).scalar()


async def rows(service: Any, sql: str, **params: Any) -> list[Any]:
    async with service.db.engine.connect() as conn:
        return list((await conn.execute(sa.text(sql), params)).all())


@pytest.fixture
async def booking(start_service):
    """The booking service against the real broker and database; sweeper off (tests drive it)."""
    async with start_service(build, booking_sweep_interval_seconds=0) as svc:
        yield svc


@pytest.fixture
async def client(booking):
    async with http_client(booking) as c:
        yield c
