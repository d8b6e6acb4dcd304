"""Message subscribers of the notifications service: one durable queue per consumed message
(``notifications.<channel>``, see ``contracts.topology``). Each hands the typed message to its
use case, once per message id; the docstrings are the AsyncAPI descriptions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kit.consuming import consume_once
from apps.notifications import handlers
from contracts.messages import (
    BookingCancelled,
    BookingConfirmed,
    BookingExpired,
    EventCancelled,
    NotificationRequested,
    PaymentFailed,
    PaymentRefunded,
    UserRegistered,
    WaitlistOffered,
)
from contracts.envelope import Envelope
from contracts.topology import DOMAIN_EXCHANGE, WEBHOOK_MESSAGES, queue_for

if TYPE_CHECKING:
    from kit.service import Service

SERVICE = "notifications"
Q_USER_REGISTERED = queue_for(SERVICE, UserRegistered)
Q_BOOKING_CONFIRMED = queue_for(SERVICE, BookingConfirmed)
Q_BOOKING_CANCELLED = queue_for(SERVICE, BookingCancelled)
Q_BOOKING_EXPIRED = queue_for(SERVICE, BookingExpired)
Q_PAYMENT_FAILED = queue_for(SERVICE, PaymentFailed)
Q_PAYMENT_REFUNDED = queue_for(SERVICE, PaymentRefunded)
Q_EVENT_CANCELLED = queue_for(SERVICE, EventCancelled)
Q_REQUESTED = queue_for(SERVICE, NotificationRequested)
Q_WAITLIST_OFFERED = queue_for(SERVICE, WaitlistOffered)


def subscribe(service: Service) -> None:
    broker, db = service.broker, service.db

    @broker.subscriber(Q_USER_REGISTERED, DOMAIN_EXCHANGE, title="notifications.user_registered")
    async def on_user_registered(msg: UserRegistered) -> None:
        """Keeps the new user's contact details (e-mail, name, phone) — the only source of
        them for this service — and sends the `welcome` e-mail. Notifications that were waiting
        for this user's contact go out next."""
        await consume_once(db, Q_USER_REGISTERED.name, msg, handlers.register_contact)

    @broker.subscriber(
        Q_BOOKING_CONFIRMED, DOMAIN_EXCHANGE, title="notifications.booking_confirmed"
    )
    async def on_booking_confirmed(msg: BookingConfirmed) -> None:
        """Tells the user their booking is paid and confirmed (`booking_confirmed`: e-mail,
        and SMS when they gave a phone number), with booking and event ids and the amount."""
        await consume_once(db, Q_BOOKING_CONFIRMED.name, msg, handlers.notify_booking_confirmed)

    @broker.subscriber(
        Q_BOOKING_CANCELLED, DOMAIN_EXCHANGE, title="notifications.booking_cancelled"
    )
    async def on_booking_cancelled(msg: BookingCancelled) -> None:
        """Tells the user their booking was cancelled and why (`booking_cancelled`), with the
        refund amount when `refund_due`. Cancellations with reason `payment_failed` are
        explained by the `payment_failed` notice instead."""
        await consume_once(db, Q_BOOKING_CANCELLED.name, msg, handlers.notify_booking_cancelled)

    @broker.subscriber(Q_BOOKING_EXPIRED, DOMAIN_EXCHANGE, title="notifications.booking_expired")
    async def on_booking_expired(msg: BookingExpired) -> None:
        """Tells the user their seat hold lapsed before payment (`booking_expired`)."""
        await consume_once(db, Q_BOOKING_EXPIRED.name, msg, handlers.notify_booking_expired)

    @broker.subscriber(Q_WAITLIST_OFFERED, DOMAIN_EXCHANGE, title="notifications.waitlist_offered")
    async def on_waitlist_offered(msg: WaitlistOffered) -> None:
        """Tells the user seats from an event's waiting list are held for them
        (`waitlist_offer`): how many, the amount due and until when to pay."""
        await consume_once(db, Q_WAITLIST_OFFERED.name, msg, handlers.notify_waitlist_offer)

    @broker.subscriber(Q_PAYMENT_FAILED, DOMAIN_EXCHANGE, title="notifications.payment_failed")
    async def on_payment_failed(msg: PaymentFailed) -> None:
        """Tells the user their payment was declined and the booking released (`payment_failed`)."""
        await consume_once(db, Q_PAYMENT_FAILED.name, msg, handlers.notify_payment_failed)

    @broker.subscriber(Q_PAYMENT_REFUNDED, DOMAIN_EXCHANGE, title="notifications.payment_refunded")
    async def on_payment_refunded(msg: PaymentRefunded) -> None:
        """Tells the user their money went back (`payment_refunded`), with amount and reference."""
        await consume_once(db, Q_PAYMENT_REFUNDED.name, msg, handlers.notify_payment_refunded)

    @broker.subscriber(Q_EVENT_CANCELLED, DOMAIN_EXCHANGE, title="notifications.event_cancelled")
    async def on_event_cancelled(msg: EventCancelled) -> None:
        """Tells the event's organizer it is cancelled (`event_cancelled`). Ticket holders are
        told through the `booking_cancelled` message booking sends for each of their bookings."""
        await consume_once(db, Q_EVENT_CANCELLED.name, msg, handlers.notify_event_cancelled)

    @broker.subscriber(Q_REQUESTED, DOMAIN_EXCHANGE, title="notifications.notifications")
    async def on_notification_requested(msg: NotificationRequested) -> None:
        """Command: send `body` (and `subject`) to `user_id` on `channel`, stored under
        `notification_id`. Goes out once the user's contact details are known."""
        await consume_once(db, Q_REQUESTED.name, msg, handlers.request_notification)

    subscribers = {
        "user_registered": on_user_registered,
        "booking_confirmed": on_booking_confirmed,
        "booking_cancelled": on_booking_cancelled,
        "booking_expired": on_booking_expired,
        "waitlist_offered": on_waitlist_offered,
        "payment_failed": on_payment_failed,
        "payment_refunded": on_payment_refunded,
        "event_cancelled": on_event_cancelled,
        "notifications": on_notification_requested,
    }
    # The other webhook kinds: consumed only to pass them on to organizers' webhooks (the ones
    # above pass theirs on too).
    for message in WEBHOOK_MESSAGES:
        if message.routing_key not in subscribers:
            subscribers[message.routing_key] = _webhooks_only(service, message)
    service.subscribers = subscribers  # type: ignore[attr-defined] - for TestRabbitBroker's .mock


def _webhooks_only(service: Service, message: type[Envelope]) -> Any:
    queue = queue_for(SERVICE, message)
    db = service.db

    async def on_message(msg: Envelope) -> None:
        await consume_once(db, queue.name, msg, handlers.pass_to_webhooks)

    on_message.__annotations__["msg"] = message  # decoded as this message's contract
    on_message.__name__ = on_message.__qualname__ = f"on_{message.routing_key}"
    return service.broker.subscriber(
        queue,
        DOMAIN_EXCHANGE,
        title=f"notifications.{message.routing_key}",
        description=f"Passes `{message.routing_key}` on to the webhooks registered for it "
        "(an organizer's for their own events, an admin's for all)."
        + (
            " Also records which organizer the event belongs to."
            if "organizer_id" in message.model_fields
            else ""
        ),
    )(on_message)
