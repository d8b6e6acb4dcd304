"""HTTP request and response bodies of the events API (``XCreate`` / ``XUpdate`` / ``XPublic``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
)

from apps.events.domain import (
    MAX_CAPACITY,
    MAX_TICKET_TYPES,
    Event,
    EventStatus,
    TicketType,
    Voucher,
)
from contracts.envelope import AwareInstant, CurrencyCode, MoneyAmount

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Venue = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Description = Annotated[str, StringConstraints(max_length=5000)]
Capacity = Annotated[int, Field(ge=1, le=MAX_CAPACITY, description="Seats for sale.")]
Price = Annotated[MoneyAmount, Field(le=Decimal("1000000"), description="Price of one seat.")]
TypeName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
TypeCapacity = Annotated[
    int,
    Field(
        ge=1,
        le=MAX_CAPACITY,
        description="Seats of this type at most (it also draws from the event's capacity; the "
        "types' capacities may add up to more). Null: only the event's capacity limits it.",
    ),
]
MaxPerOrder = Annotated[
    int, Field(ge=1, le=MAX_CAPACITY, description="Tickets of this type one booking may hold.")
]
SalesStart = Annotated[
    AwareInstant, Field(description="No sales before this time; null: on sale from now.")
]
SalesEnd = Annotated[
    AwareInstant,
    Field(description="No sales after this time (at most starts_at); null: until the start."),
]
FeePercent = Annotated[
    Decimal,
    Field(
        ge=0,
        le=100,
        max_digits=5,
        decimal_places=2,
        description="Share of the paid amount kept on a self-service cancellation, in percent "
        '(a decimal string, "0" to "100").',
        examples=["10"],
    ),
]
DeadlineHours = Annotated[
    int,
    Field(
        ge=0,
        le=24 * 366,
        description="Self-service cancellation closes this many hours before the event starts.",
    ),
]


class TicketTypeCreate(BaseModel):
    """A ticket type; its currency is the event's."""

    model_config = ConfigDict(extra="forbid")

    name: TypeName
    description: Description = ""
    price: Price
    capacity: TypeCapacity | None = None
    sales_start: SalesStart | None = None
    sales_end: SalesEnd | None = None
    max_per_order: MaxPerOrder | None = None


class Patch(BaseModel):
    """A partial update. Its :meth:`changes` are the fields the client set; a null means
    "unchanged" (and is left out) except in the ``clearable`` fields, where it clears the value."""

    model_config = ConfigDict(extra="forbid")

    clearable: ClassVar[frozenset[str]] = frozenset()

    def changes(self) -> dict[str, object]:
        return {
            k: v
            for k, v in self.model_dump(exclude_unset=True).items()
            if v is not None or k in self.clearable
        }


class TicketTypeUpdate(Patch):
    """Any subset of a ticket type's fields; null clears capacity, sales_start, sales_end and
    max_per_order (back to their defaults). A new price applies to holds made after it; bookings
    already made keep theirs. A capacity below what booking has already held or sold of the type
    is refused (409 ``capacity-below-booked``)."""

    # null means "back to the default" for the optional limits
    clearable = frozenset({"capacity", "sales_start", "sales_end", "max_per_order"})

    name: TypeName | None = None
    description: Description | None = None
    price: Price | None = None
    capacity: TypeCapacity | None = None
    sales_start: SalesStart | None = None
    sales_end: SalesEnd | None = None
    max_per_order: MaxPerOrder | None = None


class RefundPolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    self_service: bool = Field(default=True, description="Buyers may cancel paid bookings.")
    deadline_hours_before_start: DeadlineHours = 48
    fee_percent: FeePercent = Decimal("0")


class RefundPolicyPatch(Patch):
    """Any subset of the refund policy's fields; the others keep their values."""

    self_service: bool | None = None
    deadline_hours_before_start: DeadlineHours | None = None
    fee_percent: FeePercent | None = None


class EventCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Description = ""
    venue: Venue
    starts_at: AwareInstant = Field(description="Must be in the future; with a time zone.")
    ends_at: AwareInstant | None = Field(default=None, description="After starts_at.")
    capacity: Capacity
    price: Price | None = Field(
        default=None,
        description="Price of a seat; required without ticket_types. With ticket_types leave it "
        "out: the event's price is then the lowest type price.",
    )
    currency: CurrencyCode
    ticket_types: list[TicketTypeCreate] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_TICKET_TYPES,
        description="The kinds of tickets for sale (names unique within the event); each draws "
        "from the event's capacity. Left out: one type, `General admission`, at `price`.",
    )
    refund_policy: RefundPolicyIn = Field(default_factory=RefundPolicyIn)


class EventUpdate(Patch):
    """Any subset of the create fields."""

    clearable = frozenset({"ends_at"})  # null: "no end time"

    title: Title | None = None
    description: Description | None = None
    venue: Venue | None = None
    starts_at: AwareInstant | None = None
    ends_at: AwareInstant | None = None
    capacity: Capacity | None = None
    price: Price | None = Field(
        default=None,
        description="Sets the price of the event's only ticket type; refused (422) when the event "
        "has several (change each type instead).",
    )
    currency: CurrencyCode | None = None
    refund_policy: RefundPolicyPatch | None = None

    def changes(self) -> dict[str, object]:
        data = super().changes()
        if self.refund_policy is not None:
            data["refund_policy"] = self.refund_policy.changes()
        return data


class EventCancel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(max_length=1000)] = ""


class TicketTypePublic(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    price: MoneyAmount
    currency: str
    capacity: int | None
    sales_start: datetime | None = Field(description="Null: on sale since the type was created.")
    sales_end: datetime | None = Field(description="Null: until the event starts.")
    max_per_order: int | None

    @classmethod
    def of(cls, ticket_type: TicketType, currency: str) -> TicketTypePublic:
        return cls.model_validate(
            {**vars(ticket_type), "currency": currency}, from_attributes=False
        )


class RefundPolicyPublic(BaseModel):
    self_service: bool
    deadline_hours_before_start: int
    fee_percent: Annotated[
        Decimal, PlainSerializer(lambda v: f"{v.normalize():f}", return_type=str)
    ]


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
    ticket_types: list[TicketTypePublic]
    refund_policy: RefundPolicyPublic

    @classmethod
    def of(cls, event: Event) -> EventPublic:
        return cls.model_validate(
            {
                **vars(event),
                "ticket_types": [
                    TicketTypePublic.of(t, event.currency) for t in event.ticket_types
                ],
                "refund_policy": vars(event.refund_policy),
            }
        )


# --- vouchers ---------------------------------------------------------------------------------

VoucherCodeIn = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_upper=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
    ),
    Field(
        description="Letters, digits, `-` and `_`, up to 64; stored upper-case (buyers may type "
        "it in any case).",
        examples=["EARLY10"],
    ),
]
PercentOff = Annotated[
    Decimal,
    Field(
        gt=0,
        le=100,
        max_digits=5,
        decimal_places=2,
        description="Percent off the eligible lines' total (a decimal string).",
        examples=["10"],
    ),
]
AmountOff = Annotated[
    MoneyAmount,
    Field(
        gt=0,
        le=Decimal("1000000"),
        description="Amount off the eligible lines' total, in the "
        "event's currency (never more than that total).",
    ),
]
MaxUses = Annotated[
    int, Field(ge=1, le=1_000_000, description="Bookings that may hold the voucher at once.")
]
ValidUntil = Annotated[
    AwareInstant, Field(description="No new bookings with it from then on; null: no end.")
]
VoucherTypes = Annotated[
    list[uuid.UUID],
    Field(
        max_length=MAX_TICKET_TYPES,
        description="The event's ticket types it discounts; empty or left out: every type.",
    ),
]


class VoucherCreate(BaseModel):
    """Exactly one of ``percent_off`` and ``amount_off``."""

    model_config = ConfigDict(extra="forbid")

    code: VoucherCodeIn
    percent_off: PercentOff | None = None
    amount_off: AmountOff | None = None
    max_uses: MaxUses
    valid_until: ValidUntil | None = None
    ticket_type_ids: VoucherTypes | None = None


class VoucherUpdate(Patch):
    """Any subset of the create fields but ``code``; setting one discount clears the other."""

    clearable = frozenset({"valid_until", "ticket_type_ids"})

    percent_off: PercentOff | None = None
    amount_off: AmountOff | None = None
    max_uses: MaxUses | None = None
    valid_until: ValidUntil | None = None
    ticket_type_ids: VoucherTypes | None = None


class VoucherPublic(BaseModel):
    id: uuid.UUID
    event_id: uuid.UUID
    code: str
    percent_off: Annotated[
        Decimal | None,
        PlainSerializer(
            lambda v: None if v is None else f"{v.normalize():f}", return_type=str | None
        ),
    ]
    amount_off: MoneyAmount | None
    max_uses: int
    used: int = Field(
        description="Uses held by pending or paid bookings, as booking last reported them (it "
        "may lag a moment behind)."
    )
    valid_until: datetime | None
    ticket_type_ids: list[uuid.UUID] = Field(description="Empty: every ticket type.")
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, voucher: Voucher) -> VoucherPublic:
        return cls.model_validate({**vars(voucher), "used": max(voucher.used, 0)})


class VoucherList(BaseModel):
    items: list[VoucherPublic]
    next_cursor: str | None = Field(default=None, description="Always null: one page.")
