"""Message subscribers of the notifications service: one durable queue per consumed message
(``notifications.<channel>``, see ``contracts.topology``). Each hands the typed message to its
use case, once per message id; the descriptions below are the AsyncAPI descriptions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from kit.consuming import consume_once, subscribe_to
from kit.uow import UnitOfWork
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
from contracts.topology import BOUND_WHILE_NEEDED, DOMAIN_EXCHANGE, WEBHOOK_MESSAGES, queue_for

if TYPE_CHECKING:
    from faststream.rabbit import RabbitQueue

    from kit.service import Service

SERVICE = "notifications"

Handler = Callable[[Any, UnitOfWork], Awaitable[None]]

# What each consumed message does: its use case, and the description of its queue.
SUBSCRIPTIONS: list[tuple[type[Envelope], Handler, str]] = [
    (
        UserRegistered,
        handlers.register_contact,
        """Keeps the new user's contact details (e-mail, name, phone) — the only source of
        them for this service — and sends the `welcome` e-mail. Notifications that were waiting
        for this user's contact go out next.""",
    ),
    (
        BookingConfirmed,
        handlers.notify_booking_confirmed,
        """Tells the user their booking is paid and confirmed (`booking_confirmed`: e-mail,
        and SMS when they gave a phone number), with booking and event ids and the amount.""",
    ),
    (
        BookingCancelled,
        handlers.notify_booking_cancelled,
        """Tells the user their booking was cancelled and why (`booking_cancelled`), with the
        refund amount when `refund_due`. Cancellations with reason `payment_failed` are
        explained by the `payment_failed` notice instead.""",
    ),
    (
        BookingExpired,
        handlers.notify_booking_expired,
        "Tells the user their seat hold lapsed before payment (`booking_expired`).",
    ),
    (
        WaitlistOffered,
        handlers.notify_waitlist_offer,
        """Tells the user seats from an event's waiting list are held for them
        (`waitlist_offer`): how many, the amount due and until when to pay.""",
    ),
    (
        PaymentFailed,
        handlers.notify_payment_failed,
        "Tells the user their payment was declined and the booking released (`payment_failed`).",
    ),
    (
        PaymentRefunded,
        handlers.notify_payment_refunded,
        "Tells the user their money went back (`payment_refunded`), with amount and reference.",
    ),
    (
        EventCancelled,
        handlers.notify_event_cancelled,
        """Tells the event's organizer it is cancelled (`event_cancelled`). Ticket holders are
        told through the `booking_cancelled` message booking sends for each of their bookings.""",
    ),
    (
        NotificationRequested,
        handlers.request_notification,
        """Command: send `body` (and `subject`) to `user_id` on `channel`, stored under
        `notification_id`. Goes out once the user's contact details are known.""",
    ),
]


# Consumed only to pass them on to webhooks: the service keeps nothing of them (event messages
# tell it the event's organizer, so they are always read). Their queues are bound to the domain
# exchange only while an endpoint subscribes to the kind (``kit.bindings``).
WEBHOOK_ONLY: tuple[type[Envelope], ...] = BOUND_WHILE_NEEDED[SERVICE]


def webhook_only_queues() -> dict[str, RabbitQueue]:
    """The queue of each webhook-only kind, by kind."""
    return {m.routing_key: queue_for(SERVICE, m) for m in WEBHOOK_ONLY}


def subscribe(service: Service) -> None:
    subscribers = {
        message.routing_key: _subscriber(service, message, handler, description)
        for message, handler, description in SUBSCRIPTIONS
    }
    # The other webhook kinds: consumed only to pass them on to organizers' webhooks (the ones
    # above pass theirs on too).
    for message in WEBHOOK_MESSAGES:
        if message.routing_key not in subscribers:
            subscribers[message.routing_key] = _subscriber(
                service,
                message,
                handlers.pass_to_webhooks,
                f"Passes `{message.routing_key}` on to the webhooks registered for it "
                "(an organizer's for their own events, an admin's for all)."
                + (
                    " Also records which organizer the event belongs to."
                    if "organizer_id" in message.model_fields
                    else ""
                )
                + (
                    " Bound to the domain exchange only while a webhook subscribes to "
                    f"`{message.routing_key}`."
                    if message in WEBHOOK_ONLY
                    else ""
                ),
            )
    service.subscribers = subscribers  # type: ignore[attr-defined] - for TestRabbitBroker's .mock


def _subscriber(
    service: Service, message: type[Envelope], handler: Handler, description: str
) -> Any:
    """The subscriber of this service's queue for ``message``: ``handler`` once per message id."""
    queue = queue_for(SERVICE, message)
    db = service.db

    async def receive(msg: Envelope) -> None:
        await consume_once(db, queue.name, msg, handler)

    return subscribe_to(
        service.broker,
        queue,
        DOMAIN_EXCHANGE,
        message,
        receive,
        title=f"{SERVICE}.{message.routing_key}",
        description=description,
    )
