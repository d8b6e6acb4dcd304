"""HTTP request and response bodies of the events API (``XCreate`` / ``XUpdate`` / ``XPublic``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from apps.events.domain import MAX_CAPACITY, Event, EventStatus
from contracts.envelope import CurrencyCode, MoneyAmount

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Venue = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Description = Annotated[str, StringConstraints(max_length=5000)]
Capacity = Annotated[int, Field(ge=1, le=MAX_CAPACITY, description="Seats for sale.")]
Price = Annotated[MoneyAmount, Field(le=Decimal("1000000"), description="Price of one seat.")]


class EventCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Description = ""
    venue: Venue
    starts_at: AwareDatetime = Field(description="Must be in the future; with a time zone.")
    ends_at: AwareDatetime | None = Field(default=None, description="After starts_at.")
    capacity: Capacity
    price: Price
    currency: CurrencyCode


class EventUpdate(BaseModel):
    """Any subset of the create fields."""

    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    description: Description | None = None
    venue: Venue | None = None
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    capacity: Capacity | None = None
    price: Price | None = None
    currency: CurrencyCode | None = None

    def changes(self) -> dict[str, object]:
        data = self.model_dump(exclude_unset=True)
        # null is only meaningful for ends_at ("no end time"); elsewhere it means "unchanged"
        return {k: v for k, v in data.items() if v is not None or k == "ends_at"}


class EventCancel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(max_length=1000)] = ""


class EventPublic(BaseModel):
    id: uuid.UUID
    organizer_id: uuid.UUID
    title: str
    description: str
    venue: str
    starts_at: datetime
    ends_at: datetime | None
    capacity: int
    price: MoneyAmount
    currency: str
    status: EventStatus
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, event: Event) -> EventPublic:
        return cls.model_validate(event, from_attributes=True)
