"""The fields every booking-lifecycle message takes from its booking (the use cases' and the
waiting list's ``booking_*`` messages, and the refunds asked of payments, are built here, so
they cannot drift apart)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import TypeVar

from apps.booking.domain import Booking, CancellationReason
from contracts.envelope import Envelope, caused_by
from contracts.messages import BookingDetails, BookingLine, RefundRequested

M = TypeVar("M", bound=BookingDetails)


def booking_details(
    booking: Booking, message: type[M], cause: Envelope | None, **extra: object
) -> M:
    """``message`` about ``booking`` (caused by ``cause``, if any), with ``extra`` fields."""
    return message(
        **caused_by(cause),
        booking_id=booking.id,
        event_id=booking.event_id,
        user_id=booking.user_id,
        quantity=booking.quantity,
        amount=booking.amount,
        currency=booking.currency,
        discount=booking.discount,
        voucher_code=booking.voucher_code,
        lines=[
            BookingLine(
                ticket_type_id=ln.ticket_type_id,
                name=ln.name,
                quantity=ln.quantity,
                unit_price=ln.unit_price,
                amount=ln.amount,
            )
            for ln in booking.lines
        ],
        **extra,
    )


def refund_requested(
    booking: Booking,
    cause: Envelope | None,
    *,
    reason: CancellationReason,
    refund_id: uuid.UUID | None = None,
    amount: Decimal | None = None,
) -> RefundRequested:
    """The command asking payments to refund ``amount`` of ``booking``'s payment (None: all that
    is left of it) under ``refund_id`` (caused by ``cause``, if any)."""
    return RefundRequested(
        **caused_by(cause),
        booking_id=booking.id,
        user_id=booking.user_id,
        payment_id=booking.payment_id,
        reason=reason,
        refund_id=refund_id,
        amount=amount,
    )
