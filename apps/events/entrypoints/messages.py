"""Bus subscribers of the events service: booking's word on its vouchers' uses. The
descriptions below are the AsyncAPI descriptions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from apps.events import handlers
from contracts.messages import BookingCancelled, BookingConfirmed, BookingCreated, BookingExpired
from contracts.topology import BOUND_WHILE_NEEDED, DOMAIN_EXCHANGE, queue_for
from kit.consuming import consume_once, subscribe_to

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from faststream.rabbit import RabbitQueue

    from contracts.envelope import Envelope
    from contracts.messages import BookingDetails
    from kit.db import Database
    from kit.service import Service

SERVICE = "events"

# Each booking fact that can move a voucher's uses, and what it does to them.
VOUCHER_USES: list[tuple[type[Envelope], str]] = [
    (
        BookingCreated,
        """A hold with a voucher took one of its uses (`voucher_use: 1`): the voucher's `used`
        goes up. Bookings without a voucher change nothing.""",
    ),
    (
        BookingConfirmed,
        "A payment after expiry re-took the voucher's use with the seats (`voucher_use: 1`).",
    ),
    (
        BookingCancelled,
        "An unpaid booking's cancellation gave its voucher's use back (`voucher_use: -1`).",
    ),
    (BookingExpired, "A lapsed hold gave its voucher's use back (`voucher_use: -1`)."),
]


def voucher_use_queues() -> dict[str, RabbitQueue]:
    """The queue of each booking fact that can move a voucher's uses, by routing key. They are
    bound to the domain exchange only while the service has vouchers (``kit.bindings``)."""
    return {m.routing_key: queue_for(SERVICE, m) for m in BOUND_WHILE_NEEDED[SERVICE]}


def subscribe(service: Service) -> None:
    subscribers = {}
    for message, description in VOUCHER_USES:
        queue = queue_for(SERVICE, message)
        subscribers[message.routing_key] = subscribe_to(
            service.broker,
            queue,
            DOMAIN_EXCHANGE,
            message,
            _counting(service.db, queue.name),
            description=description
            + " Bound to the domain exchange only while the service has vouchers.",
        )
    service.subscribers = subscribers  # type: ignore[attr-defined]  # handles for tests


def _counting(db: Database, consumer: str) -> Callable[[BookingDetails], Awaitable[None]]:
    async def count(msg: BookingDetails) -> None:
        # only facts that moved a voucher's uses change anything here (nothing to dedupe else)
        if msg.voucher_code is not None and msg.voucher_use:
            await consume_once(db, consumer, msg, handlers.count_voucher_use)  # type: ignore[arg-type]

    return count
