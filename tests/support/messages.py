"""Contract messages with plausible defaults, as their producers would send them: a test (or a
bench) names only the fields it is about."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from contracts.messages import BookingCreated, EventCreated, PaymentConfirmed, VoucherCreated


def event_created(**over: Any) -> EventCreated:
    """The events service's word on a new, scheduled event: 10 seats at 20.00 EUR, in 30 days."""
    fields: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "organizer_id": uuid.uuid4(),
        "title": "PyCon Lisbon",
        "venue": "Altice Arena",
        "starts_at": datetime.now(UTC) + timedelta(days=30),
        "capacity": 10,
        "price": Decimal("20.00"),
        "currency": "EUR",
        "status": "scheduled",
        "version": 1,
        "producer": "events",
    }
    return EventCreated(**{**fields, **over})


def booking_created(**over: Any) -> BookingCreated:
    """Booking's word on a new hold: 2 seats for 40.00 EUR, held for 10 minutes."""
    fields: dict[str, Any] = {
        "booking_id": uuid.uuid4(),
        "event_id": uuid.uuid4(),
        "user_id": uuid.uuid4(),
        "quantity": 2,
        "amount": Decimal("40.00"),
        "currency": "EUR",
        "expires_at": datetime.now(UTC) + timedelta(minutes=10),
        "producer": "booking",
    }
    return BookingCreated(**{**fields, **over})


def payment_confirmed(**over: Any) -> PaymentConfirmed:
    """Payments' word on a successful charge of 50.00 EUR for some booking."""
    fields: dict[str, Any] = {
        "payment_id": uuid.uuid4(),
        "booking_id": uuid.uuid4(),
        "user_id": uuid.uuid4(),
        "event_id": uuid.uuid4(),
        "amount": Decimal("50.00"),
        "currency": "EUR",
        "provider_reference": "ch_sim_1",
        "producer": "payments",
    }
    return PaymentConfirmed(**{**fields, **over})


def voucher_for(event: EventCreated, code: str = "SAVE10", **over: Any) -> VoucherCreated:
    """Events' word on a new voucher for ``event``: 10 % off, 5 uses."""
    fields: dict[str, Any] = {
        "voucher_id": uuid.uuid4(),
        "event_id": event.event_id,
        "code": code,
        "percent_off": Decimal("10"),
        "max_uses": 5,
        "version": 1,
        "producer": "events",
    }
    fields.update(over)
    return VoucherCreated(**fields)
