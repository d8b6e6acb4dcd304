"""HTTP request and response bodies of the booking API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from apps.booking.adapters.repository import Inventory
from apps.booking.domain import Booking, BookingStatus, CancellationReason
from contracts.envelope import MoneyAmount

# The configured per-booking cap (MAX_TICKETS_PER_BOOKING) is checked by the use case; this is
# only a sanity bound for the wire.
Quantity = Annotated[int, Field(ge=1, le=10_000, description="Number of seats.", examples=[2])]


class BookingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: uuid.UUID
    quantity: Quantity


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

    @classmethod
    def of(cls, booking: Booking) -> BookingPublic:
        return cls.model_validate(booking, from_attributes=True)


class CapacityChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # bounded by the inventory's integer column: a larger number is bad input (422), not a 500
    capacity: int = Field(ge=1, le=2**31 - 1, description="The event's new total number of seats.")


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
