"""What each notification says: one template per kind and channel (``string.Template``).

E-mail gets a subject and a full body; SMS a one-line text; push a title (the subject) and the
one-line text. ``$name``-style placeholders are filled by :func:`render` from the values the
handlers take from the message; a missing value is a bug and raises ``KeyError``.
Money is always shown as ``<amount> <currency>`` with two decimals.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from string import Template
from typing import Any

from apps.notifications.domain import Channel

_SIGNATURE = "\n\n-- \nEvent Booking\n"


@dataclass(frozen=True)
class KindTemplates:
    subject: str
    email: str
    short: str  # SMS text and push body

    def for_channel(self, channel: Channel) -> tuple[Template, Template]:
        if channel == "email":
            return Template(self.subject), Template(self.email + _SIGNATURE)
        if channel == "sms":
            return Template(""), Template(self.short)
        return Template(self.subject), Template(self.short)


TEMPLATES: dict[str, KindTemplates] = {
    "welcome": KindTemplates(
        subject="Welcome to Event Booking",
        email="$greeting\n\nyour account ($email) is ready. Browse events and book your seats "
        "whenever you like.",
        short="Welcome to Event Booking! Your account is ready.",
    ),
    "booking_confirmed": KindTemplates(
        subject="Booking confirmed: $quantity ticket(s)",
        email="$greeting\n\nyour booking is paid and confirmed.\n\n"
        "Booking: $booking_id\nEvent: $event_id\nTickets: $quantity\nPaid: $amount\n"
        "Payment: $payment_id\n\n$tickets_text",
        short="Booking $booking_id confirmed: $quantity ticket(s), $amount paid.",
    ),
    "booking_cancelled": KindTemplates(
        subject="Booking cancelled",
        email="$greeting\n\nyour booking was cancelled $reason_text.\n\n"
        "Booking: $booking_id\nEvent: $event_id\nTickets: $quantity\nAmount: $amount\n\n"
        "$refund_text",
        short="Booking $booking_id was cancelled $reason_text. $refund_text",
    ),
    "booking_expired": KindTemplates(
        subject="Your booking hold expired",
        email="$greeting\n\nwe held $quantity seat(s) for you, but the hold expired before "
        "payment, so the seats are back on sale.\n\n"
        "Booking: $booking_id\nEvent: $event_id\nAmount that was due: $amount",
        short="Your hold on $quantity seat(s) (booking $booking_id) expired before payment.",
    ),
    "waitlist_offer": KindTemplates(
        subject="Seats for you from the waiting list: $quantity ticket(s)",
        email="$greeting\n\nseats came back for an event whose waiting list you joined, and we "
        "are holding $quantity for you. Pay $amount before $expires_at to get your tickets; "
        "after that the seats go to the next person waiting.\n\n"
        "Booking: $booking_id\nEvent: $event_id\nTickets: $quantity\nDue: $amount\n"
        "Pay before: $expires_at",
        short="$quantity seat(s) from the waiting list are held for you (booking $booking_id): "
        "pay $amount before $expires_at.",
    ),
    "payment_failed": KindTemplates(
        subject="Payment failed",
        email="$greeting\n\nwe could not take your payment of $amount ($failure_reason), so "
        "the booking was cancelled and its seats released. Nothing was charged.\n\n"
        "Booking: $booking_id\nEvent: $event_id\nPayment: $payment_id",
        short="Payment of $amount for booking $booking_id failed ($failure_reason). "
        "Nothing was charged.",
    ),
    "payment_refunded": KindTemplates(
        subject="Refund of $amount issued",
        email="$greeting\n\nwe refunded $amount to the card you paid with. ${reason_text}"
        "Depending on your bank it can take a few days to show.\n\n"
        "Booking: $booking_id\nPayment: $payment_id\nRefund reference: $provider_reference",
        short="Refund of $amount for booking $booking_id issued.",
    ),
    "event_cancelled": KindTemplates(
        subject="Your event was cancelled: $title",
        email='$greeting\n\nyour event "$title" ($venue, starting $starts_at) is cancelled. '
        "Its bookings are being cancelled, paid ones refunded, and every ticket holder is "
        "told.\n\nEvent: $event_id\nReason given: $reason",
        short='Your event "$title" is cancelled; its ticket holders are being refunded.',
    ),
    # Free text from an admin or another service (the `notifications` command channel).
    "custom": KindTemplates(subject="$subject", email="$body", short="$body"),
}

CANCELLATION_REASONS = {
    "user_request": "at your request",
    "payment_failed": "because the payment failed",
    "event_cancelled": "because the event was cancelled",
    "paid_after_expiry": "because the payment arrived after the hold had expired and the "
    "seats were gone",
    "organizer_refund": "because the event's organizer refunded it in full",
}

# Why money went back, as the first sentence of a refund notice (empty: no sentence).
REFUND_REASONS = {
    "user_request": "You cancelled your booking.",
    "event_cancelled": "The event was cancelled.",
    "paid_after_expiry": "Your payment arrived after the hold had expired and the seats were gone.",
    "organizer_refund": "The event's organizer refunded it.",
}


def money(amount: Decimal, currency: str) -> str:
    return f"{amount:.2f} {currency}"


def greeting(full_name: str | None) -> str:
    return f"Hello {full_name}," if full_name else "Hello,"


# Placeholders added after notifications were first stored: a stored notification rendered
# again (its contact arrived) may not have them.
OPTIONAL_VALUES = {"tickets_text": ""}


def render(kind: str, channel: Channel, **values: Any) -> tuple[str, str]:
    """(subject, body) of a ``kind`` notification on ``channel``. Unknown kinds use ``custom``.
    The subject is one line whatever the values hold (an event title or an admin's subject with
    a line break would otherwise make a mail header no server takes, failing the send for good)."""
    subject, body = TEMPLATES.get(kind, TEMPLATES["custom"]).for_channel(channel)
    values = {**OPTIONAL_VALUES, **{k: "" if v is None else str(v) for k, v in values.items()}}
    return " ".join(subject.substitute(values).split()), body.substitute(values).strip() + (
        "\n" if channel == "email" else ""
    )
