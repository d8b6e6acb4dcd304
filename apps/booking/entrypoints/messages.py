"""Bus subscribers of the booking service: one per consumed message, each a thin hand-off to a
use case run once per message id (:func:`kit.consuming.consume_once`). Their docstrings
are the AsyncAPI descriptions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from apps.booking import handlers
from apps.booking.deps import BookingDeps
from kit.consuming import consume_once
from contracts.messages import (
    EventCancelled,
    EventCreated,
    EventUpdated,
    PaymentConfirmed,
    PaymentFailed,
    PaymentRefunded,
    RefundFailed,
    VoucherCreated,
    VoucherUpdated,
)
from contracts.topology import DOMAIN_EXCHANGE, queue_for

if TYPE_CHECKING:
    from kit.service import Service

EVENT_CREATED = queue_for("booking", EventCreated)
EVENT_UPDATED = queue_for("booking", EventUpdated)
EVENT_CANCELLED = queue_for("booking", EventCancelled)
PAYMENT_CONFIRMED = queue_for("booking", PaymentConfirmed)
PAYMENT_FAILED = queue_for("booking", PaymentFailed)
PAYMENT_REFUNDED = queue_for("booking", PaymentRefunded)
REFUND_FAILED = queue_for("booking", RefundFailed)
VOUCHER_CREATED = queue_for("booking", VoucherCreated)
VOUCHER_UPDATED = queue_for("booking", VoucherUpdated)


def subscribe(service: Service) -> None:
    broker, db = service.broker, service.db
    deps = BookingDeps.of(service)
    recently = deps.availability  # what changes seats here is forgotten once committed

    # The use cases with this database's repository, in the shapes consume_once calls them.
    def with_repo(use_case: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        return partial(use_case, repository=deps.repository)

    apply_event_snapshot = with_repo(handlers.apply_event_snapshot)
    cancel_event_bookings = with_repo(handlers.cancel_event_bookings)
    confirm_booking, confirm_pending = (
        with_repo(handlers.confirm_booking),
        with_repo(handlers.confirm_pending),
    )
    fail_booking, fail_pending = with_repo(handlers.fail_booking), with_repo(handlers.fail_pending)
    apply_voucher_snapshot = with_repo(handlers.apply_voucher_snapshot)

    @broker.subscriber(EVENT_CREATED, DOMAIN_EXCHANGE)
    async def on_event_created(msg: EventCreated) -> None:
        """Puts the new event's seats on sale: its capacity, price and currency become the
        booking inventory. A snapshot older than one already applied (`version`) is ignored."""
        await consume_once(db, EVENT_CREATED.name, msg, apply_event_snapshot)
        recently.forget(msg.event_id)

    @broker.subscriber(EVENT_UPDATED, DOMAIN_EXCHANGE)
    async def on_event_updated(msg: EventUpdated) -> None:
        """Applies the event's new capacity, price and currency to future bookings (existing
        bookings keep their amount). Older snapshots are ignored; capacity never drops below
        the seats already held or sold."""
        await consume_once(db, EVENT_UPDATED.name, msg, apply_event_snapshot)
        recently.forget(msg.event_id)

    @broker.subscriber(EVENT_CANCELLED, DOMAIN_EXCHANGE)
    async def on_event_cancelled(msg: EventCancelled) -> None:
        """Stops sales and cancels every open booking of the event: each gets a
        `booking_cancelled` (reason `event_cancelled`); paid ones also a `refund_requested`
        command to payments and `refund_due: true`."""
        await consume_once(db, EVENT_CANCELLED.name, msg, cancel_event_bookings)
        recently.forget(msg.event_id)

    @broker.subscriber(PAYMENT_CONFIRMED, DOMAIN_EXCHANGE)
    async def on_payment_confirmed(msg: PaymentConfirmed) -> None:
        """Confirms the booking (`booking_confirmed`): held seats become sold. Paid after the
        hold expired: confirmed if the seats can be re-taken, otherwise cancelled with reason
        `paid_after_expiry`, `refund_due: true` and a `refund_requested`. Paid for a cancelled
        booking: `refund_requested`. Duplicates change nothing."""
        await consume_once(
            db, PAYMENT_CONFIRMED.name, msg, confirm_booking, at_once=confirm_pending
        )

    @broker.subscriber(PAYMENT_FAILED, DOMAIN_EXCHANGE)
    async def on_payment_failed(msg: PaymentFailed) -> None:
        """Cancels a pending booking (`booking_cancelled`, reason `payment_failed`) and puts its
        seats back on sale. Ignored if the booking is already paid, expired or cancelled."""
        await consume_once(db, PAYMENT_FAILED.name, msg, fail_booking, at_once=fail_pending)
        recently.forget()  # seats back on sale (the message names the booking, not the event)

    @broker.subscriber(PAYMENT_REFUNDED, DOMAIN_EXCHANGE)
    async def on_payment_refunded(msg: PaymentRefunded) -> None:
        """The refund booking asked for (`refund_id`) was made: the booking's `refund` shows
        `succeeded`. A refund booking did not name, or a duplicate, changes nothing."""
        await consume_once(db, PAYMENT_REFUNDED.name, msg, handlers.settle_refund)

    @broker.subscriber(REFUND_FAILED, DOMAIN_EXCHANGE)
    async def on_refund_failed(msg: RefundFailed) -> None:
        """The refund booking asked for (`refund_id`) was not made: the booking's `refund`
        shows `failed`, and its amount may be asked for again."""
        await consume_once(db, REFUND_FAILED.name, msg, handlers.fail_refund)

    @broker.subscriber(VOUCHER_CREATED, DOMAIN_EXCHANGE)
    async def on_voucher_created(msg: VoucherCreated) -> None:
        """Bookings of the event may use the new voucher from now on; booking counts its uses
        (a hold takes one, an expiry or unpaid cancellation gives it back)."""
        await consume_once(db, VOUCHER_CREATED.name, msg, apply_voucher_snapshot)

    @broker.subscriber(VOUCHER_UPDATED, DOMAIN_EXCHANGE)
    async def on_voucher_updated(msg: VoucherUpdated) -> None:
        """Applies the voucher's new terms to future holds (bookings made keep their discount).
        Older snapshots (`version`) are ignored."""
        await consume_once(db, VOUCHER_UPDATED.name, msg, apply_voucher_snapshot)

    service.subscribers = {  # type: ignore[attr-defined]  # handles for tests (TestRabbitBroker)
        "event_created": on_event_created,
        "event_updated": on_event_updated,
        "event_cancelled": on_event_cancelled,
        "payment_confirmed": on_payment_confirmed,
        "payment_failed": on_payment_failed,
        "payment_refunded": on_payment_refunded,
        "refund_failed": on_refund_failed,
        "voucher_created": on_voucher_created,
        "voucher_updated": on_voucher_updated,
    }
