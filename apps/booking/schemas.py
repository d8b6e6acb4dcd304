"""HTTP request and response bodies of the booking API."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from apps.booking.adapters.refunds import RefundView
from apps.booking.adapters.repository import Inventory
from apps.booking.adapters.tickets import Ticket
from apps.booking.adapters.waitlist import EntryRow as WaitlistEntryRow
from apps.booking.domain import Booking, BookingStatus, CancellationReason
from contracts.envelope import AwareInstant, MoneyAmount

# The configured per-booking cap (MAX_TICKETS_PER_BOOKING) is checked by the use case; this is
# only a sanity bound for the wire.
Quantity = Annotated[int, Field(ge=1, le=10_000, description="Number of seats.", examples=[2])]


class OrderLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticket_type_id: uuid.UUID
    quantity: Quantity


class AttendeeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, examples=["Ada Lovelace"])
    email: EmailStr | None = None


class BookingCreate(BaseModel):
    """``{event_id, quantity}`` for an event with one ticket type, or ``{event_id, lines}``."""

    model_config = ConfigDict(extra="forbid")

    event_id: uuid.UUID
    quantity: Quantity | None = Field(
        default=None, description="Seats of the event's only ticket type (else use `lines`)."
    )
    lines: list[OrderLine] | None = Field(
        default=None, min_length=1, max_length=20, description="One line per ticket type."
    )
    voucher_code: str | None = Field(default=None, max_length=64)
    attendees: list[AttendeeIn] | None = Field(
        default=None,
        max_length=10_000,
        description="One per ticket, in line order (optional).",
    )

    @property
    def total(self) -> int:
        """The seats asked for."""
        if self.lines:
            return sum(ln.quantity for ln in self.lines)
        return self.quantity or 0


class BookingLinePublic(BaseModel):
    ticket_type_id: uuid.UUID
    name: str
    quantity: int
    unit_price: MoneyAmount
    amount: MoneyAmount


class AttendeePublic(BaseModel):
    ticket_type_id: uuid.UUID
    name: str
    email: str | None = None


class BookingPublic(BaseModel):
    id: uuid.UUID
    event_id: uuid.UUID
    user_id: uuid.UUID
    quantity: int
    status: BookingStatus
    amount: MoneyAmount = Field(description="Event price × quantity at booking time.")
    currency: str
    expires_at: datetime = Field(description="While pending, the seats are held until then.")
    created_at: datetime
    updated_at: datetime
    payment_id: uuid.UUID | None = None
    cancellation_reason: CancellationReason | None = None
    lines: list[BookingLinePublic] = Field(
        default_factory=list, description="Seats per ticket type at the prices frozen at hold."
    )
    discount: MoneyAmount = Decimal("0.00")
    voucher_code: str | None = None
    attendees: list[AttendeePublic] = Field(default_factory=list)

    @classmethod
    def of(cls, booking: Booking) -> BookingPublic:
        return cls.model_validate(booking, from_attributes=True)


class CapacityChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # bounded by the inventory's integer column: a larger number is bad input (422), not a 500
    capacity: int = Field(ge=1, le=2**31 - 1, description="The event's new total number of seats.")
    ticket_type_id: uuid.UUID | None = Field(
        default=None,
        description="Set this ticket type's own capacity instead of the event's.",
    )


class InventoryPublic(BaseModel):
    event_id: uuid.UUID
    capacity: int
    held: int
    sold: int
    available: int
    status: str

    @classmethod
    def of(cls, inv: Inventory) -> InventoryPublic:
        return cls(
            event_id=inv.event_id,
            capacity=inv.capacity,
            held=inv.held,
            sold=inv.sold,
            available=inv.available,
            status=inv.status,
        )


# --- refunds and the organizer's view ---------------------------------------------------------


class RefundPublic(BaseModel):
    amount: MoneyAmount = Field(description="What goes back to the buyer.")
    fee: MoneyAmount = Field(description="What the event's refund policy kept.")
    status: Literal["pending", "succeeded", "failed"] = Field(
        description="From payments' answer: pending until it comes."
    )
    reason: str | None = Field(
        default=None,
        description="The reason the organizer or admin gave with the refund; absent if none.",
    )

    # No return annotation: with one, pydantic would take it as the schema (and lose the model's).
    @model_serializer(mode="wrap")
    def _reason_only_if_given(self, handler: SerializerFunctionWrapHandler):
        data = handler(self)
        if isinstance(data, dict) and data.get("reason") is None:
            data.pop("reason", None)  # {amount, fee, status}, as for every refund without one
        return data


class BookingView(BookingPublic):
    """A booking with its refunds, if any: the latest, and all of them."""

    refund: RefundPublic | None = Field(default=None, description="The latest refund.")
    refunds: list[RefundPublic] = Field(
        default_factory=list,
        description="Every refund asked for the booking, oldest first. One that failed stays "
        "`failed` here whatever was asked after it; what it did not give back can be asked "
        "again (`POST /booking/{booking_id}/refund`).",
    )

    @classmethod
    def with_refunds(cls, booking: Booking, refunds: Sequence[RefundView] = ()) -> BookingView:
        view = cls.model_validate(booking, from_attributes=True)
        view.refunds = [
            RefundPublic(amount=r.amount, fee=r.fee, status=r.status, reason=r.note)
            for r in refunds
        ]
        view.refund = view.refunds[-1] if view.refunds else None
        return view


class RefundCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=2)] | None = Field(
        default=None,
        description="How much to give back (default: everything paid and not yet refunded).",
        examples=["15.00"],
    )
    reason: str | None = Field(
        default=None,
        max_length=500,
        description="For the record: kept with the refund and shown in the booking's `refund`.",
    )


ATTENDEE_CSV_HEADER = (
    "booking_id",
    "booking_status",
    "ticket_type_id",
    "ticket_type",
    "attendee_name",
    "attendee_email",
    "buyer_id",
    "booked_at",
)


def attendee_rows(bookings: list[Booking]) -> list[tuple[object, ...]]:
    """One row per ticket: its attendee when the buyer named them, else blank name and email."""
    rows: list[tuple[object, ...]] = []
    for b in bookings:
        names = list(b.attendees)
        seat = 0
        for line in b.lines:
            for _ in range(line.quantity):
                who = names[seat] if seat < len(names) else None
                seat += 1
                rows.append(
                    (
                        b.id,
                        b.status,
                        line.ticket_type_id,
                        line.name,
                        who.name if who else "",
                        (who.email or "") if who else "",
                        b.user_id,
                        b.created_at.isoformat(),
                    )
                )
    return rows


# --- tickets and check-in ---------------------------------------------------------------------

TicketStatus = Literal["valid", "redeemed", "void"]
# A ticket secret is ~260 characters; anything much longer is not one of ours.
Secret = Annotated[str, Field(min_length=1, max_length=2000, description="The QR code's text.")]


class TicketPublic(BaseModel):
    id: uuid.UUID
    booking_id: uuid.UUID
    event_id: uuid.UUID
    ticket_type_id: uuid.UUID
    attendee_name: str | None = Field(description="As the order named them, if it did.")
    status: TicketStatus = Field(description="`void` once its booking is cancelled or refunded.")
    secret: str = Field(
        description="What the QR code holds: a compact JWS (EdDSA) with claims `tid`, `eid`. "
        "Whoever has it can enter: show it only to the ticket's holder."
    )
    issued_at: datetime
    redeemed_at: datetime | None = Field(default=None, description="Its first scan.")

    @classmethod
    def of(cls, ticket: Ticket) -> TicketPublic:
        return cls.model_validate(ticket, from_attributes=True)


class PublicJwk(BaseModel):
    """An Ed25519 public key (RFC 8037) that verifies the event's ticket secrets offline."""

    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: str = Field(description="The public key, base64url.")
    kid: str = Field(description="As in the `kid` header of the event's ticket secrets.")
    alg: Literal["EdDSA"]
    use: Literal["sig"]


class CheckInRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: uuid.UUID = Field(description="The event whose entrance scans the ticket.")
    secret: Secret


class CheckInResult(BaseModel):
    result: Literal["redeemed"]
    ticket: TicketPublic


class CheckInCounts(BaseModel):
    event_id: uuid.UUID
    tickets: int = Field(description="Tickets that can enter (valid or redeemed; void left out).")
    redeemed: int = Field(description="Tickets scanned in.")


class TicketChange(BaseModel):
    id: uuid.UUID
    ticket_type_id: uuid.UUID
    status: TicketStatus
    redeemed_at: datetime | None = None
    changed_at: datetime


class CheckInList(BaseModel):
    """The event's tickets changed since the cursor: a scanner keeps them to refuse void and
    already-redeemed tickets offline."""

    items: list[TicketChange]
    cursor: str | None = Field(
        description="Pass as `since` next time for the changes after these (null: nothing "
        "changed yet)."
    )
    has_more: bool = Field(description="More changes are waiting: ask again at once.")


class OfflineScan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: Secret
    scanned_at: AwareInstant = Field(description="When the scanner saw it.")


class ScanUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scans: list[OfflineScan] = Field(min_length=1, max_length=500)


class ScanOutcome(BaseModel):
    result: Literal["redeemed", "already-redeemed", "ticket-void", "wrong-event", "unknown-ticket"]
    ticket_id: uuid.UUID | None = None
    redeemed_at: datetime | None = Field(
        default=None, description="The ticket's first scan (the earliest one uploaded)."
    )


class ScanUploadResult(BaseModel):
    results: list[ScanOutcome] = Field(description="One per scan, in the upload's order.")


# --- live availability ------------------------------------------------------------------------


class TicketTypeAvailability(BaseModel):
    id: uuid.UUID
    available: int = Field(description="Seats of this type that can still be held now.")


class AvailabilityPublic(BaseModel):
    event_id: uuid.UUID
    capacity: int
    available: int = Field(description="Seats of the event that can still be held now.")
    held: int = Field(description="Seats in unpaid holds.")
    sold: int
    ticket_types: list[TicketTypeAvailability]
    version: int = Field(
        description="Changes whenever any other figure does (the `ETag` is made from it)."
    )


# --- the waiting list -------------------------------------------------------------------------

WaitlistStatus = Literal["waiting", "offered", "purchased", "expired", "cancelled"]


class WaitlistJoin(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: uuid.UUID
    ticket_type_id: uuid.UUID | None = Field(
        default=None, description="The ticket type wanted; none: any type of the event."
    )
    quantity: Quantity


class WaitlistEntryPublic(BaseModel):
    id: uuid.UUID
    event_id: uuid.UUID
    ticket_type_id: uuid.UUID | None
    quantity: int
    status: WaitlistStatus = Field(
        description="`waiting` in the queue; `offered`: seats are held for you in `booking_id` "
        "until `expires_at`; then what became of the offer: `purchased`, `expired`, `cancelled`."
    )
    position: int | None = Field(
        default=None, description="While waiting: your place in the event's queue (1: next)."
    )
    booking_id: uuid.UUID | None = None
    expires_at: datetime | None = None
    created_at: datetime

    @classmethod
    def of(cls, e: WaitlistEntryRow) -> WaitlistEntryPublic:
        offered = e.booking_id is not None
        status: WaitlistStatus = "waiting"
        if offered:
            status = {"pending": "offered", "confirmed": "purchased", "expired": "expired"}.get(
                e.booking_status or "", "cancelled"
            )  # type: ignore[assignment]
        return cls(
            id=e.id,
            event_id=e.event_id,
            ticket_type_id=e.ticket_type_id,
            quantity=e.quantity,
            status=status,
            position=e.position if e.status == "waiting" else None,
            booking_id=e.booking_id,
            expires_at=e.expires_at if offered else None,
            created_at=e.created_at,
        )
