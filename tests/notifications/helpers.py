"""Message factories and database probes shared by the notifications tests."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from apps.booking.adapters import tickets as ticketing
from apps.notifications.adapters.tables import contacts, notifications
from deploy.local.smtp_sink import MailSink, start_sink
from tests.support import messages
from tests.support.bus import send as send  # the notifications tests import it from here
from contracts.messages import (
    BookingCancelled,
    BookingConfirmed,
    BookingExpired,
    EventCancelled,
    EventCreated,
    IssuedTicket,
    NotificationRequested,
    PaymentFailed,
    PaymentRefunded,
    UserRegistered,
    WaitlistOffered,
)


def user_registered(user_id: uuid.UUID | None = None, **over: Any) -> UserRegistered:
    uid = user_id or uuid.uuid4()
    fields: dict[str, Any] = dict(
        user_id=uid,
        email=f"u{uid.hex[:10]}@example.com",
        full_name="Ada Lovelace",
        role="customer",
        producer="auth",
    )
    fields.update(over)
    return UserRegistered(**fields)


def _booking(user_id: uuid.UUID | None) -> dict[str, Any]:
    return dict(
        booking_id=uuid.uuid4(),
        event_id=uuid.uuid4(),
        user_id=user_id or uuid.uuid4(),
        quantity=2,
        amount=Decimal("40.00"),
        currency="EUR",
        producer="booking",
    )


def booking_confirmed(user_id: uuid.UUID | None = None, **over: Any) -> BookingConfirmed:
    return BookingConfirmed(**{**_booking(user_id), "payment_id": uuid.uuid4(), **over})


def booking_cancelled(user_id: uuid.UUID | None = None, **over: Any) -> BookingCancelled:
    return BookingCancelled(**{**_booking(user_id), "reason": "user_request", **over})


def booking_expired(user_id: uuid.UUID | None = None, **over: Any) -> BookingExpired:
    return BookingExpired(**{**_booking(user_id), **over})


def waitlist_offered(user_id: uuid.UUID | None = None, **over: Any) -> WaitlistOffered:
    b = _booking(user_id)
    fields = {k: b[k] for k in ("booking_id", "event_id", "user_id", "quantity", "currency")}
    return WaitlistOffered(
        **{
            **fields,
            "entry_id": uuid.uuid4(),
            "amount": Decimal("40.00"),
            "expires_at": datetime(2027, 5, 1, 9, 10, tzinfo=UTC),
            "producer": "booking",
            **over,
        }
    )


def _payment(user_id: uuid.UUID | None) -> dict[str, Any]:
    return dict(
        payment_id=uuid.uuid4(),
        booking_id=uuid.uuid4(),
        user_id=user_id or uuid.uuid4(),
        event_id=uuid.uuid4(),
        amount=Decimal("40.00"),
        currency="EUR",
        producer="payments",
    )


def payment_failed(user_id: uuid.UUID | None = None, **over: Any) -> PaymentFailed:
    return PaymentFailed(**{**_payment(user_id), "failure_reason": "card_declined", **over})


def payment_refunded(user_id: uuid.UUID | None = None, **over: Any) -> PaymentRefunded:
    return PaymentRefunded(
        **{**_payment(user_id), "reason": "user_request", "provider_reference": "re_123", **over}
    )


def event_created(organizer_id: uuid.UUID | None = None, **over: Any) -> EventCreated:
    """An event of ``organizer_id`` (a new one if None) starting in 3 days."""
    return messages.event_created(
        organizer_id=organizer_id or uuid.uuid4(),
        starts_at=datetime.now(UTC) + timedelta(days=3),
        **over,
    )


def event_cancelled(organizer_id: uuid.UUID | None = None, **over: Any) -> EventCancelled:
    fields = event_created(organizer_id).model_dump(exclude={"message_id", "message_type"})
    return EventCancelled(
        **{**fields, "status": "cancelled", "version": 2, "reason": "venue flooded", **over}
    )


def notification_requested(user_id: uuid.UUID | None = None, **over: Any) -> NotificationRequested:
    fields: dict[str, Any] = dict(
        user_id=user_id or uuid.uuid4(),
        channel="email",
        subject="Doors open at 9",
        body="Bring your ticket.",
        producer="events",
    )
    fields.update(over)
    return NotificationRequested(**fields)


async def stored(service: Any, **where: Any) -> list[Any]:
    """Notification rows matching ``column=value`` filters, oldest first."""
    stmt = sa.select(notifications).order_by(notifications.c.created_at, notifications.c.channel)
    for column, value in where.items():
        stmt = stmt.where(notifications.c[column] == value)
    async with service.db.engine.connect() as conn:
        return list((await conn.execute(stmt)).all())


async def contact_of(service: Any, user_id: uuid.UUID) -> Any:
    async with service.db.engine.connect() as conn:
        return (
            await conn.execute(sa.select(contacts).where(contacts.c.user_id == user_id))
        ).first()


FAST_RETRIES = dict(
    delivery_poll_seconds=0.05, delivery_backoff_seconds=0.1, delivery_max_backoff_seconds=0.5
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    """An SMTP server the test can take down and bring back on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.handler = MailSink()
        self.server: Any = None

    async def up(self) -> None:
        self.server = await start_sink(self.handler, port=self.port)

    async def down(self) -> None:
        self.server.close()
        await self.server.wait_closed()
        self.server = None

    def to(self, address: str) -> list[Any]:
        return [m for m in self.handler.messages if address in m.recipients]

    async def mail_to(self, address: str, subject_prefix: str = "") -> list[Any]:
        """The mail received for ``address`` (whose subject starts so); a probe for eventually."""
        return [m for m in self.to(address) if m.subject.startswith(subject_prefix)]


def issued(
    event_id: uuid.UUID, booking_id: uuid.UUID, names: list[str | None]
) -> list[IssuedTicket]:
    """Tickets signed as booking signs them (an event key of the test's own)."""
    key = ticketing._new_key(event_id)
    out = []
    for n, name in enumerate(names):
        tid = ticketing.ticket_id(booking_id, n)
        out.append(
            IssuedTicket(
                ticket_id=tid,
                ticket_type_id=uuid.uuid4(),
                attendee_name=name,
                secret=ticketing.sign(key, tid),
            )
        )
    return out
