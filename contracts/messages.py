"""Every message of the platform, one Pydantic model each.

Naming: facts are past tense (``BookingCreated``); the two commands are imperative
(``RefundRequested`` asks payments to give money back, ``NotificationRequested`` asks
notifications to tell somebody something). Each model's docstring and field descriptions end up
in the AsyncAPI documents, so they are written for the consumer who reads the spec.
"""

from __future__ import annotations

import uuid

from decimal import Decimal
from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, EmailStr, Field

from contracts.envelope import CurrencyCode, Envelope, MoneyAmount

UserId = Annotated[uuid.UUID, Field(description="Id of the user (the `sub` of their JWT).")]
EventId = Annotated[uuid.UUID, Field(description="Id of the event (concert, conference...).")]
BookingId = Annotated[uuid.UUID, Field(description="Id of the booking.")]
PaymentId = Annotated[uuid.UUID, Field(description="Id of the payment.")]
TicketTypeId = Annotated[uuid.UUID, Field(description="Id of one of an event's ticket types.")]
RefundId = Annotated[uuid.UUID, Field(description="Id of one refund of a payment.")]
Role = Literal["customer", "organizer", "admin"]
EventStatus = Literal["scheduled", "cancelled"]
Channel = Literal["email", "sms", "push"]
VoucherCode = Annotated[
    str,
    Field(
        pattern=r"^[A-Z0-9][A-Z0-9_-]{0,63}$",
        description="A voucher's code: upper-case letters, digits, `-` and `_` (codes are "
        "matched case-insensitively: clients' input is upper-cased).",
        examples=["EARLY10"],
    ),
]
VoucherUse = Literal[-1, 0, 1]

_EXAMPLE_USER = "6f1c2b7e-3f4a-4c55-9a53-2f8e1d0b9c11"
_EXAMPLE_EVENT = "0b7c9a8e-5d2f-4e1b-8a6c-3d4f5e6a7b8c"
_EXAMPLE_BOOKING = "9e8d7c6b-5a4f-4e3d-2c1b-0a9f8e7d6c5b"
_EXAMPLE_PAYMENT = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"


# --- auth -----------------------------------------------------------------------------------


class UserRegistered(Envelope):
    """A user account was created. Carries what other services need to address the user."""

    routing_key: ClassVar[str] = "user_registered"
    message_type: Literal["user_registered"] = "user_registered"

    user_id: UserId
    email: EmailStr = Field(description="The user's e-mail address.", examples=["ada@example.com"])
    full_name: str = Field(default="", description="Display name.", examples=["Ada Lovelace"])
    role: Role = Field(description="Role given at registration.", examples=["customer"])
    phone: str | None = Field(default=None, description="Phone number for SMS, E.164, if known.")


# --- events ---------------------------------------------------------------------------------


class TicketType(BaseModel):
    """One kind of ticket of an event (e.g. "Early bird", "VIP"), as the events service has it."""

    ticket_type_id: TicketTypeId
    name: str = Field(examples=["Early bird"])
    price: MoneyAmount
    capacity: int | None = Field(
        default=None,
        ge=1,
        description="Seats of this type at most; null: only the event's capacity limits it.",
        examples=[200],
    )
    sales_start: AwareDatetime | None = Field(
        default=None, description="No holds before this time; null: on sale since its creation."
    )
    sales_end: AwareDatetime | None = Field(
        default=None, description="No holds after this time; null: until the event starts."
    )
    max_per_order: int | None = Field(
        default=None, ge=1, description="Tickets of this type one booking may hold at most."
    )


def implied_ticket_type_id(event_id: uuid.UUID) -> uuid.UUID:
    """The id of the one ticket type an event created without ticket types has ("General
    admission"): derived from the event's id, so that a consumer which saw only snapshots from
    before ticket types existed (empty ``ticket_types``) names that type as the events service
    does. A rule, never to change (both services' migrations have given it to stored rows)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{event_id}/general")


class RefundPolicy(BaseModel):
    """When and how a buyer may cancel a paid booking themselves."""

    self_service: bool = Field(default=True, description="Buyers may cancel paid bookings.")
    deadline_hours_before_start: int = Field(
        default=48, ge=0, description="Self-service cancellation closes this long before start."
    )
    fee_percent: Decimal = Field(
        default=Decimal("0"),
        ge=0,
        le=100,
        description="Share of the paid amount kept on a self-service cancellation.",
        examples=["10"],
    )


class EventDetails(Envelope):
    """Fields shared by the event-lifecycle messages: a full snapshot of the event."""

    event_id: EventId
    organizer_id: UserId
    title: str = Field(examples=["PyCon Lisbon 2027"])
    venue: str = Field(examples=["Altice Arena, Lisbon"])
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None
    capacity: int = Field(ge=1, description="Total seats for sale.", examples=[1000])
    price: MoneyAmount
    currency: CurrencyCode
    status: EventStatus = Field(examples=["scheduled"])
    version: int = Field(
        ge=1,
        description="Increases with every change; consumers ignore a snapshot older than one "
        "they have applied (messages may arrive out of order).",
        examples=[1],
    )
    ticket_types: list[TicketType] = Field(
        default_factory=list,
        description="Every ticket type of the event (each draws from `capacity`). Empty only "
        "in snapshots from before ticket types existed: one type at `price` is implied.",
        examples=[
            [
                {
                    "ticket_type_id": "5c0f6a3e-2b1d-4c8e-9f7a-6b5d4c3e2f10",
                    "name": "Early bird",
                    "price": "15.00",
                    "capacity": 200,
                    "sales_start": None,
                    "sales_end": "2027-04-01T00:00:00Z",
                    "max_per_order": 4,
                }
            ]
        ],
    )
    refund_policy: RefundPolicy = Field(
        default_factory=RefundPolicy,
        examples=[{"self_service": True, "deadline_hours_before_start": 48, "fee_percent": "10"}],
    )


class EventCreated(EventDetails):
    """An organizer created an event; its seats are now for sale."""

    routing_key: ClassVar[str] = "event_created"
    message_type: Literal["event_created"] = "event_created"


class EventUpdated(EventDetails):
    """An event changed (title, venue, times, capacity or price). Full snapshot after the change."""

    routing_key: ClassVar[str] = "event_updated"
    message_type: Literal["event_updated"] = "event_updated"

    changed_fields: list[str] = Field(
        default_factory=list,
        description="Names of the fields this update changed.",
        examples=[["capacity", "price"]],
    )


class EventCancelled(EventDetails):
    """An event was cancelled: its bookings are cancelled and paid ones refunded."""

    routing_key: ClassVar[str] = "event_cancelled"
    message_type: Literal["event_cancelled"] = "event_cancelled"

    reason: str = Field(default="", description="Why, as given by the organizer.")


class VoucherDetails(Envelope):
    """Fields shared by the voucher messages: a full snapshot of one of an event's vouchers."""

    voucher_id: uuid.UUID = Field(description="Id of the voucher.")
    event_id: EventId
    code: VoucherCode
    percent_off: Decimal | None = Field(
        default=None,
        gt=0,
        le=100,
        description="Share of the eligible lines' total taken off, in percent; null when "
        "`amount_off` is set (exactly one of the two is).",
        examples=["10"],
    )
    amount_off: MoneyAmount | None = Field(
        default=None,
        description="Taken off the eligible lines' total (never more than it), in the event's "
        "currency; null when `percent_off` is set.",
    )
    max_uses: int = Field(ge=1, description="Bookings that may hold it at once, at most.")
    valid_until: AwareDatetime | None = Field(
        default=None, description="No new holds with it from this time; null: no end."
    )
    ticket_type_ids: list[TicketTypeId] = Field(
        default_factory=list,
        description="The ticket types it applies to; empty: every type of the event.",
    )
    version: int = Field(
        ge=1, description="Increases with every change; an older snapshot loses.", examples=[1]
    )


class VoucherCreated(VoucherDetails):
    """An organizer created a voucher for their event: bookings may use it from now on."""

    routing_key: ClassVar[str] = "voucher_created"
    message_type: Literal["voucher_created"] = "voucher_created"


class VoucherUpdated(VoucherDetails):
    """A voucher changed: full snapshot after the change (bookings made keep their discount)."""

    routing_key: ClassVar[str] = "voucher_updated"
    message_type: Literal["voucher_updated"] = "voucher_updated"


# --- booking --------------------------------------------------------------------------------


class BookingLine(BaseModel):
    """Seats of one ticket type in a booking, at the price frozen when they were held."""

    ticket_type_id: TicketTypeId
    name: str = Field(examples=["Early bird"])
    quantity: int = Field(ge=1, examples=[2])
    unit_price: MoneyAmount
    amount: MoneyAmount = Field(description="`quantity` x `unit_price`.")


class BookingDetails(Envelope):
    """Fields shared by the booking-lifecycle messages."""

    booking_id: BookingId
    event_id: EventId
    user_id: UserId
    quantity: int = Field(ge=1, description="Number of seats.", examples=[2])
    amount: MoneyAmount = Field(description="Total due for the booking, after any discount.")
    currency: CurrencyCode
    lines: list[BookingLine] = Field(
        default_factory=list,
        description="The seats per ticket type (their quantities add up to `quantity`). Empty "
        "only in messages from before ticket types existed.",
        examples=[
            [
                {
                    "ticket_type_id": "5c0f6a3e-2b1d-4c8e-9f7a-6b5d4c3e2f10",
                    "name": "Early bird",
                    "quantity": 2,
                    "unit_price": "15.00",
                    "amount": "30.00",
                }
            ]
        ],
    )
    discount: MoneyAmount = Field(
        default=Decimal("0.00"),
        description="Taken off the lines' total by `voucher_code` (`amount` is after it).",
        examples=["3.00"],
    )
    voucher_code: VoucherCode | None = Field(
        default=None, description="The event's voucher this booking was made with, if any."
    )
    voucher_use: VoucherUse = Field(
        default=0,
        description="What this fact did to the count of uses of `voucher_code`: 1 took a use "
        "(a hold, or seats re-taken by a payment after expiry), -1 gave it back (the booking "
        "expired or was cancelled unpaid), 0 nothing. Summing it per voucher gives its uses.",
    )


class BookingCreated(BookingDetails):
    """Seats are held for a user until `expires_at`; payment can start."""

    routing_key: ClassVar[str] = "booking_created"
    message_type: Literal["booking_created"] = "booking_created"

    expires_at: AwareDatetime = Field(description="The hold lapses at this time unless paid.")


TicketId = Annotated[uuid.UUID, Field(description="Id of one ticket (one seat).")]


class IssuedTicket(BaseModel):
    """One ticket of a confirmed booking, as issued with it."""

    ticket_id: TicketId
    ticket_type_id: TicketTypeId
    attendee_name: str | None = Field(
        default=None, description="The attendee the order named for this seat, if any."
    )
    secret: str = Field(
        description="What the ticket's QR code holds: a compact JWS (EdDSA, Ed25519) with "
        "claims `tid` (the ticket) and `eid` (the event), verifiable offline with the event's "
        "public key. Whoever holds it can enter: treat it like a password.",
        examples=["eyJhbGciOiJFZERTQSIsImtpZCI6Ii4uLiJ9.eyJ0aWQiOiIuLi4iLCJlaWQiOiIuLi4ifQ.c2ln"],
    )


class BookingConfirmed(BookingDetails):
    """The booking is paid and its seats are sold: the user has their tickets."""

    routing_key: ClassVar[str] = "booking_confirmed"
    message_type: Literal["booking_confirmed"] = "booking_confirmed"

    payment_id: PaymentId
    tickets: list[IssuedTicket] = Field(
        default_factory=list,
        description="One ticket per seat, in line order. Empty only in messages from before "
        "tickets existed.",
    )


CancellationReason = Literal[
    "user_request", "payment_failed", "event_cancelled", "paid_after_expiry", "organizer_refund"
]


class BookingCancelled(BookingDetails):
    """The booking was cancelled and its seats released. `refund` is set when money goes back."""

    routing_key: ClassVar[str] = "booking_cancelled"
    message_type: Literal["booking_cancelled"] = "booking_cancelled"

    reason: CancellationReason = Field(examples=["user_request"])
    refund_due: bool = Field(
        default=False, description="True when the booking had been paid and a refund follows."
    )


class BookingExpired(BookingDetails):
    """The hold lapsed before payment; its seats are back on sale."""

    routing_key: ClassVar[str] = "booking_expired"
    message_type: Literal["booking_expired"] = "booking_expired"


class RefundRequested(Envelope):
    """Command to payments: give the money of this booking's successful payment back."""

    routing_key: ClassVar[str] = "refund_requested"
    message_type: Literal["refund_requested"] = "refund_requested"

    booking_id: BookingId
    user_id: UserId
    payment_id: PaymentId | None = Field(
        default=None, description="The payment to refund, if booking knows it."
    )
    reason: CancellationReason
    refund_id: RefundId | None = Field(
        default=None,
        description="Names this refund (one booking may be refunded in several parts); the same "
        "id twice is one refund. Null: the whole remaining amount, once.",
    )
    amount: MoneyAmount | None = Field(
        default=None,
        description="How much to give back; null: everything captured and not yet refunded. "
        "Payments never refunds more than it captured, whatever arrives.",
    )


# --- payments -------------------------------------------------------------------------------


class PaymentDetails(Envelope):
    """Fields shared by the payment messages."""

    payment_id: PaymentId
    booking_id: BookingId
    user_id: UserId
    event_id: EventId | None = None
    amount: MoneyAmount
    currency: CurrencyCode


class PaymentConfirmed(PaymentDetails):
    """A charge succeeded: the booking can be confirmed."""

    routing_key: ClassVar[str] = "payment_confirmed"
    message_type: Literal["payment_confirmed"] = "payment_confirmed"

    provider_reference: str = Field(description="The payment provider's id for the charge.")


class PaymentFailed(PaymentDetails):
    """A charge was declined or could not be made: the booking is cancelled."""

    routing_key: ClassVar[str] = "payment_failed"
    message_type: Literal["payment_failed"] = "payment_failed"

    failure_reason: str = Field(examples=["card_declined"])


class PaymentRefunded(PaymentDetails):
    """Money of a successful payment went back to the payer: `amount` is this refund's part."""

    routing_key: ClassVar[str] = "payment_refunded"
    message_type: Literal["payment_refunded"] = "payment_refunded"

    reason: CancellationReason
    provider_reference: str
    refund_id: RefundId | None = Field(default=None, description="As in `refund_requested`.")
    refunded_total: MoneyAmount | None = Field(
        default=None, description="Everything refunded of this payment so far, this included."
    )


class RefundFailed(PaymentDetails):
    """A refund was not made (refused by the provider, or above what is left): `amount` was asked."""

    routing_key: ClassVar[str] = "refund_failed"
    message_type: Literal["refund_failed"] = "refund_failed"

    reason: CancellationReason
    refund_id: RefundId | None = Field(default=None, description="As in `refund_requested`.")
    failure_reason: str = Field(examples=["exceeds_remaining"])
    refunded_total: MoneyAmount | None = Field(
        default=None, description="Everything refunded of this payment so far (unchanged)."
    )


class TicketCheckedIn(Envelope):
    """A ticket was redeemed at the entrance: its first scan, once per ticket."""

    # `redeemed_at` is the scan's time (never before the ticket was issued): an offline scanner
    # may upload it minutes later.

    routing_key: ClassVar[str] = "ticket_checked_in"
    message_type: Literal["ticket_checked_in"] = "ticket_checked_in"

    ticket_id: TicketId
    booking_id: BookingId
    event_id: EventId
    ticket_type_id: TicketTypeId
    redeemed_at: AwareDatetime
    checked_in_by: UserId = Field(description="The organizer or admin whose scanner redeemed it.")


# --- waiting list (booking) ---------------------------------------------------------------


class WaitlistOffered(Envelope):
    """Seats from an event's waiting list are held for a user in a pending booking to pay."""

    # The booking is announced by its own `booking_created`; unpaid by `expires_at`, it expires
    # like any hold and its seats pass on to the next entry.

    routing_key: ClassVar[str] = "waitlist_offered"
    message_type: Literal["waitlist_offered"] = "waitlist_offered"

    entry_id: uuid.UUID = Field(description="The waiting-list entry that was served.")
    booking_id: BookingId
    event_id: EventId
    user_id: UserId
    quantity: int = Field(ge=1, description="Seats held for the entry.", examples=[2])
    amount: MoneyAmount = Field(description="Total due for the offered booking.")
    currency: CurrencyCode
    expires_at: AwareDatetime = Field(description="The offer lapses at this time unless paid.")


# --- notifications --------------------------------------------------------------------------


class NotificationRequested(Envelope):
    """Command to notifications: send this text to a user over one channel."""

    routing_key: ClassVar[str] = "notifications"
    message_type: Literal["notification_requested"] = "notification_requested"

    notification_id: uuid.UUID = Field(
        default_factory=uuid.uuid4, description="Id the notification will be stored under."
    )
    user_id: UserId
    channel: Channel = Field(examples=["email"])
    kind: str = Field(default="custom", description="Template family.", examples=["custom"])
    subject: str = Field(default="", max_length=200)
    body: str = Field(min_length=1, max_length=10_000)


ALL_MESSAGES: tuple[type[Envelope], ...] = (
    UserRegistered,
    EventCreated,
    EventUpdated,
    EventCancelled,
    VoucherCreated,
    VoucherUpdated,
    BookingCreated,
    BookingConfirmed,
    BookingCancelled,
    BookingExpired,
    RefundRequested,
    WaitlistOffered,
    PaymentConfirmed,
    PaymentFailed,
    PaymentRefunded,
    RefundFailed,
    TicketCheckedIn,
    NotificationRequested,
)

# What the `analytics` channel carries: every fact the analytics read model is built from.
AnalyticsFact = Annotated[
    EventCreated
    | EventUpdated
    | EventCancelled
    | BookingCreated
    | BookingConfirmed
    | BookingCancelled
    | BookingExpired
    | PaymentConfirmed
    | PaymentFailed
    | PaymentRefunded
    | TicketCheckedIn,
    Field(discriminator="message_type"),
]
