"""Typed messages of the Event Booking Platform: the single source of truth for the bus.

Every message that crosses a service boundary is one of the models in
:mod:`contracts.messages`; where it travels (exchanges, routing keys, queues, dead-lettering)
is declared once in :mod:`contracts.topology`.
"""

from contracts.envelope import Envelope, Money
from contracts.messages import (
    ALL_MESSAGES,
    AnalyticsFact,
    BookingCancelled,
    BookingConfirmed,
    BookingCreated,
    BookingExpired,
    EventCancelled,
    EventCreated,
    EventUpdated,
    NotificationRequested,
    PaymentConfirmed,
    PaymentFailed,
    PaymentRefunded,
    RefundRequested,
    UserRegistered,
)

__all__ = [
    "ALL_MESSAGES",
    "AnalyticsFact",
    "BookingCancelled",
    "BookingConfirmed",
    "BookingCreated",
    "BookingExpired",
    "Envelope",
    "EventCancelled",
    "EventCreated",
    "EventUpdated",
    "Money",
    "NotificationRequested",
    "PaymentConfirmed",
    "PaymentFailed",
    "PaymentRefunded",
    "RefundRequested",
    "UserRegistered",
]
