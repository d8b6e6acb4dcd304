"""Contract messages for analytics tests: one saga's facts, with sensible defaults."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from contracts.envelope import Envelope
from contracts.messages import (
    BookingCancelled,
    BookingConfirmed,
    BookingCreated,
    BookingExpired,
    EventCancelled,
    EventCreated,
    EventUpdated,
    PaymentConfirmed,
    PaymentFailed,
    PaymentRefunded,
    TicketCheckedIn,
)


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class EventFacts:
    """Facts about one event of one organizer (price 20.00 EUR unless told otherwise)."""

    organizer_id: uuid.UUID = field(default_factory=uuid.uuid4)
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    title: str = "PyCon Lisbon"
    price: Decimal = Decimal("20.00")
    currency: str = "EUR"

    def _snapshot(self, model: type[Envelope], version: int, **over: Any) -> Any:
        fields: dict[str, Any] = dict(
            event_id=self.event_id,
            organizer_id=self.organizer_id,
            title=self.title,
            venue="Altice Arena",
            starts_at=now() + timedelta(days=30),
            capacity=100,
            price=self.price,
            currency=self.currency,
            status="scheduled",
            version=version,
            producer="events",
        )
        fields.update(over)
        return model(**fields)

    def created(self, **over: Any) -> EventCreated:
        return self._snapshot(EventCreated, 1, **over)

    def updated(self, version: int = 2, **over: Any) -> EventUpdated:
        return self._snapshot(EventUpdated, version, **over)

    def cancelled(self, version: int = 3, **over: Any) -> EventCancelled:
        return self._snapshot(EventCancelled, version, status="cancelled", **over)

    def booking(self, quantity: int = 1) -> BookingFacts:
        return BookingFacts(event=self, quantity=quantity)


@dataclass
class BookingFacts:
    event: EventFacts
    quantity: int = 1
    booking_id: uuid.UUID = field(default_factory=uuid.uuid4)
    user_id: uuid.UUID = field(default_factory=uuid.uuid4)
    payment_id: uuid.UUID = field(default_factory=uuid.uuid4)

    @property
    def amount(self) -> Decimal:
        return self.event.price * self.quantity

    def _details(self, **over: Any) -> dict[str, Any]:
        fields: dict[str, Any] = dict(
            booking_id=self.booking_id,
            event_id=self.event.event_id,
            user_id=self.user_id,
            quantity=self.quantity,
            amount=self.amount,
            currency=self.event.currency,
            producer="booking",
        )
        fields.update(over)
        return fields

    def _payment(self, **over: Any) -> dict[str, Any]:
        fields: dict[str, Any] = dict(
            payment_id=self.payment_id,
            booking_id=self.booking_id,
            user_id=self.user_id,
            event_id=self.event.event_id,
            amount=self.amount,
            currency=self.event.currency,
            producer="payments",
        )
        fields.update(over)
        return fields

    def created(self, **over: Any) -> BookingCreated:
        return BookingCreated(**self._details(expires_at=now() + timedelta(minutes=10), **over))

    def confirmed(self, **over: Any) -> BookingConfirmed:
        return BookingConfirmed(**self._details(payment_id=self.payment_id, **over))

    def cancelled(self, reason: str = "user_request", **over: Any) -> BookingCancelled:
        return BookingCancelled(**self._details(reason=reason, **over))

    def expired(self, **over: Any) -> BookingExpired:
        return BookingExpired(**self._details(**over))

    def checked_in(self, **over: Any) -> TicketCheckedIn:
        fields: dict[str, Any] = {
            "ticket_id": uuid.uuid4(),
            "booking_id": self.booking_id,
            "event_id": self.event.event_id,
            "ticket_type_id": uuid.uuid4(),
            "redeemed_at": datetime.now(UTC),
            "checked_in_by": self.event.organizer_id,
            "producer": "booking",
        }
        return TicketCheckedIn(**{**fields, **over})

    def paid(self, **over: Any) -> PaymentConfirmed:
        return PaymentConfirmed(**self._payment(provider_reference="ch_test", **over))

    def payment_failed(self, failure_reason: str = "card_declined", **over: Any) -> PaymentFailed:
        return PaymentFailed(**self._payment(failure_reason=failure_reason, **over))

    def refunded(self, **over: Any) -> PaymentRefunded:
        return PaymentRefunded(
            **self._payment(reason="user_request", provider_reference="re_test", **over)
        )
