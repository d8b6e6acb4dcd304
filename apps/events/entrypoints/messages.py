"""Bus subscribers of the events service: booking's word on its vouchers' uses. Their
docstrings are the AsyncAPI descriptions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from apps.events import handlers
from contracts.messages import BookingCancelled, BookingConfirmed, BookingCreated, BookingExpired
from contracts.topology import DOMAIN_EXCHANGE, queue_for
from kit.consuming import consume_once

if TYPE_CHECKING:
    from contracts.messages import BookingDetails
    from kit.service import Service

BOOKING_CREATED = queue_for("events", BookingCreated)
BOOKING_CONFIRMED = queue_for("events", BookingConfirmed)
BOOKING_CANCELLED = queue_for("events", BookingCancelled)
BOOKING_EXPIRED = queue_for("events", BookingExpired)


def subscribe(service: Service) -> None:
    broker, db = service.broker, service.db

    async def count(consumer: str, msg: BookingDetails) -> None:
        # only facts that moved a voucher's uses change anything here (nothing to dedupe else)
        if msg.voucher_code is not None and msg.voucher_use:
            await consume_once(db, consumer, msg, handlers.count_voucher_use)  # type: ignore[arg-type]

    @broker.subscriber(BOOKING_CREATED, DOMAIN_EXCHANGE)
    async def on_booking_created(msg: BookingCreated) -> None:
        """A hold with a voucher took one of its uses (`voucher_use: 1`): the voucher's `used`
        goes up. Bookings without a voucher change nothing."""
        await count(BOOKING_CREATED.name, msg)

    @broker.subscriber(BOOKING_CONFIRMED, DOMAIN_EXCHANGE)
    async def on_booking_confirmed(msg: BookingConfirmed) -> None:
        """A payment after expiry re-took the voucher's use with the seats (`voucher_use: 1`)."""
        await count(BOOKING_CONFIRMED.name, msg)

    @broker.subscriber(BOOKING_CANCELLED, DOMAIN_EXCHANGE)
    async def on_booking_cancelled(msg: BookingCancelled) -> None:
        """An unpaid booking's cancellation gave its voucher's use back (`voucher_use: -1`)."""
        await count(BOOKING_CANCELLED.name, msg)

    @broker.subscriber(BOOKING_EXPIRED, DOMAIN_EXCHANGE)
    async def on_booking_expired(msg: BookingExpired) -> None:
        """A lapsed hold gave its voucher's use back (`voucher_use: -1`)."""
        await count(BOOKING_EXPIRED.name, msg)

    service.subscribers = {  # type: ignore[attr-defined]  # handles for tests
        "booking_created": on_booking_created,
        "booking_confirmed": on_booking_confirmed,
        "booking_cancelled": on_booking_cancelled,
        "booking_expired": on_booking_expired,
    }
