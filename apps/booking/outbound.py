"""The fields every booking-lifecycle message takes from its booking (the use cases' and the
waiting list's ``booking_*`` messages are built here, so they cannot drift apart)."""

from __future__ import annotations

from typing import TypeVar

from apps.booking.domain import Booking
from contracts.envelope import Envelope, caused_by
from contracts.messages import BookingDetails, BookingLine

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
