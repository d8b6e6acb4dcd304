"""Subscribers of the payments service: what booking tells payments. They hand each typed
message to its use case through the idempotent-consumer guard, nothing more. Docstrings are the
AsyncAPI descriptions of these channels."""

from __future__ import annotations

from kit.consuming import consume_once
from kit.service import Service
from apps.payments import handlers
from apps.payments.deps import provider_for
from contracts.messages import BookingCancelled, BookingCreated, BookingExpired, RefundRequested
from contracts.topology import DOMAIN_EXCHANGE, queue_for

BOOKING_CREATED = queue_for("payments", BookingCreated)
BOOKING_EXPIRED = queue_for("payments", BookingExpired)
BOOKING_CANCELLED = queue_for("payments", BookingCancelled)
REFUND_REQUESTED = queue_for("payments", RefundRequested)


def subscribe(service: Service) -> None:
    broker = service.broker

    @broker.subscriber(BOOKING_CREATED, DOMAIN_EXCHANGE)
    async def on_booking_created(msg: BookingCreated) -> None:
        """Payments records what the booking owes (`amount`, `currency`) and who owes it
        (`user_id`): the booking becomes payable through `POST /payments/process` until
        `expires_at`. The amount is only ever taken from this message, never from a client.
        A duplicate, or a booking already known to have expired or been cancelled, changes
        nothing."""
        await consume_once(service.db, BOOKING_CREATED.name, msg, handlers.record_booking_due)

    @broker.subscriber(BOOKING_EXPIRED, DOMAIN_EXCHANGE)
    async def on_booking_expired(msg: BookingExpired) -> None:
        """The hold lapsed: the booking can no longer be paid (409 `booking-expired`). May
        arrive before `booking_created`; the booking then stays unpayable. A booking already
        paid is left as is (booking confirms it or asks for a refund)."""
        await consume_once(service.db, BOOKING_EXPIRED.name, msg, handlers.close_expired_booking)

    @broker.subscriber(BOOKING_CANCELLED, DOMAIN_EXCHANGE)
    async def on_booking_cancelled(msg: BookingCancelled) -> None:
        """The booking was cancelled: it can no longer be paid (409 `booking-cancelled`). May
        arrive before `booking_created`; the booking then stays unpayable. Money goes back only
        on `refund_requested`."""
        await consume_once(
            service.db, BOOKING_CANCELLED.name, msg, handlers.close_cancelled_booking
        )

    @broker.subscriber(REFUND_REQUESTED, DOMAIN_EXCHANGE)
    async def on_refund_requested(msg: RefundRequested) -> None:
        """Command: refund `amount` (null: everything not yet refunded) of the booking's
        successful payment through the payment provider, then publish `payment_refunded` with
        this refund's `amount` and the payment's `refunded_total`. One refund per `refund_id`,
        however often the command is delivered. Refunds never exceed what was captured: one
        that would, or that the provider refuses, is not made and answered with
        `refund_failed`. A payment that failed is left alone; a command naming another payer or
        payment, or a booking with no payment at all, is dead-lettered for an operator."""
        await consume_once(
            service.db, REFUND_REQUESTED.name, msg, handlers.refund_payment(provider_for(service))
        )
