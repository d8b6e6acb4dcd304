"""The event aggregate and its rules. No I/O here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from contracts.messages import implied_ticket_type_id
from kit.errors import DomainError

EventStatus = Literal["scheduled", "cancelled"]

MAX_CAPACITY = 100_000
MAX_TICKET_TYPES = 20
DEFAULT_TICKET_TYPE_NAME = "General admission"
# The event's own fields that ``PUT /events/{id}/update`` may change (``price`` and
# ``refund_policy`` have rules of their own, see Event.update).
EDITABLE = (
    "title",
    "description",
    "venue",
    "starts_at",
    "ends_at",
    "capacity",
    "currency",
)
TICKET_TYPE_FIELDS = (
    "name",
    "description",
    "price",
    "capacity",
    "sales_start",
    "sales_end",
    "max_per_order",
)


class EventError(DomainError):
    """A rule of the event model was broken; ``field`` names the offending input if any. Each
    subclass says which answer it is (a 422 unless it says otherwise)."""


class EventNotFound(EventError):
    status, code = 404, "event-not-found"


class NotAllowed(EventError):
    status, code = 403, "not-event-owner"


class EventCancelledError(EventError):
    status, code = 409, "event-cancelled"


class InvalidSchedule(EventError):
    field_in = "body"


class InvalidTicketType(EventError):
    """A ticket type that breaks a rule spanning several fields (its sales window against the
    event's start, a name already taken, a price for an event with several types)."""

    field_in = "body"


class TicketTypeNotFound(EventError):
    status, code = 404, "ticket-type-not-found"


class TooManyTicketTypes(EventError):
    status, code = 409, "too-many-ticket-types"


@dataclass(frozen=True)
class TicketType:
    """One kind of ticket of an event. ``sales_start`` / ``sales_end`` None: on sale from its
    creation / until the event starts (kept None, so the window follows the event if it moves)."""

    id: uuid.UUID
    name: str
    price: Decimal
    description: str = ""
    capacity: int | None = None
    sales_start: datetime | None = None
    sales_end: datetime | None = None
    max_per_order: int | None = None
    position: int = 0

    def check(self, starts_at: datetime, *, field_prefix: str = "") -> None:
        """The sales window fits before the event starts (nothing is sold after ``starts_at``).
        ``field_prefix`` says where the type sits in the request (``ticket_types.1.``)."""
        end = self.sales_end or starts_at
        if self.sales_end is not None and self.sales_end > starts_at:
            raise InvalidTicketType(
                "Sales must end by the time the event starts.", field=f"{field_prefix}sales_end"
            )
        if self.sales_start is not None and self.sales_start >= end:
            raise InvalidTicketType(
                "Sales must start before they end (by default, when the event starts).",
                field=f"{field_prefix}sales_start",
            )


@dataclass(frozen=True)
class RefundPolicy:
    """When a buyer may cancel a paid booking themselves, and the share kept when they do."""

    self_service: bool = True
    deadline_hours_before_start: int = 48
    fee_percent: Decimal = Decimal("0")


def _name_key(name: str) -> str:
    # Names are unique within an event regardless of case ("VIP" and "vip" would confuse buyers).
    return name.strip().casefold()


@dataclass(frozen=True)
class Event:
    id: uuid.UUID
    organizer_id: uuid.UUID
    title: str
    description: str
    venue: str
    starts_at: datetime
    ends_at: datetime | None
    capacity: int
    price: Decimal
    currency: str
    status: EventStatus
    version: int
    created_at: datetime
    updated_at: datetime
    cancel_reason: str = field(default="")
    # In their order of creation; never empty (an event created without types has one).
    ticket_types: tuple[TicketType, ...] = ()
    refund_policy: RefundPolicy = field(default_factory=RefundPolicy)

    @classmethod
    def create(
        cls,
        *,
        organizer_id: uuid.UUID,
        now: datetime,
        price: Decimal | None = None,
        ticket_types: list[dict[str, Any]] | None = None,
        refund_policy: dict[str, Any] | None = None,
        **fields: Any,
    ) -> Event:
        event_id = uuid.uuid4()
        if ticket_types is None:
            if price is None:
                raise InvalidTicketType("A price is required without ticket_types.", field="price")
            types = (
                TicketType(
                    id=implied_ticket_type_id(event_id), name=DEFAULT_TICKET_TYPE_NAME, price=price
                ),
            )
        else:
            types = tuple(
                TicketType(id=uuid.uuid4(), position=i, **t) for i, t in enumerate(ticket_types)
            )
            lowest = min(t.price for t in types)
            if price is not None and price != lowest:
                raise InvalidTicketType(
                    f"With ticket_types the event's price is the lowest type price ({lowest}); "
                    "leave it out.",
                    field="price",
                )
        event = cls(
            id=event_id,
            organizer_id=organizer_id,
            status="scheduled",
            version=1,
            created_at=now,
            updated_at=now,
            price=min(t.price for t in types),
            ticket_types=types,
            refund_policy=RefundPolicy(**(refund_policy or {})),
            **fields,
        )
        event._check_schedule(now)
        seen: set[str] = set()
        for i, t in enumerate(types):
            prefix = f"ticket_types.{i}." if ticket_types is not None else ""
            t.check(event.starts_at, field_prefix=prefix)
            if _name_key(t.name) in seen:
                raise InvalidTicketType(
                    "Another ticket type of the event has this name.", field=f"{prefix}name"
                )
            seen.add(_name_key(t.name))
        return event

    def _check_schedule(self, now: datetime) -> None:
        if self.starts_at <= now:
            raise InvalidSchedule("The event must start in the future.", field="starts_at")
        if self.ends_at is not None and self.ends_at <= self.starts_at:
            raise InvalidSchedule("The event must end after it starts.", field="ends_at")

    def can_be_managed_by(self, user_id: uuid.UUID, *, is_admin: bool) -> bool:
        return is_admin or self.organizer_id == user_id

    def update(self, changes: dict[str, Any], *, now: datetime) -> tuple[Event, list[str]]:
        """Apply ``changes``; returns the new event and the names of the fields that changed.

        ``price`` sets the price of the event's only ticket type (so events made before ticket
        types, and clients that know nothing of them, keep working); with several types it is
        refused: each type has its price. ``refund_policy`` is a partial patch of the policy."""
        self._check_open()
        new = {k: changes[k] for k in EDITABLE if k in changes and changes[k] != getattr(self, k)}
        types = self.ticket_types
        if "price" in changes and changes["price"] != self.price:
            if len(types) != 1:
                raise InvalidTicketType(
                    "This event has several ticket types: change each type's price instead.",
                    field="price",
                )
            types = (replace(types[0], price=changes["price"]),)
        if changes.get("refund_policy"):
            policy = replace(self.refund_policy, **changes["refund_policy"])
            if policy != self.refund_policy:
                new["refund_policy"] = policy
        updated, changed = self._changed(new, types, now=now)
        if not changed:
            return self, []
        if "starts_at" in changed and updated.starts_at <= now:
            raise InvalidSchedule("The event must start in the future.", field="starts_at")
        if updated.ends_at is not None and updated.ends_at <= updated.starts_at:
            raise InvalidSchedule("The event must end after it starts.", field="ends_at")
        if "starts_at" in changed:
            for t in updated.ticket_types:
                try:
                    t.check(updated.starts_at)
                except InvalidTicketType as exc:
                    raise InvalidSchedule(
                        f"Ticket type {t.name!r}: {exc.detail} Move its sales window first.",
                        field="starts_at",
                    ) from exc
        return updated, changed

    def add_ticket_type(
        self, fields: dict[str, Any], *, now: datetime
    ) -> tuple[Event, TicketType, list[str]]:
        """Returns the event, the new type and the event's changed fields (``ticket_types``, and
        ``price`` when the new type is the cheapest)."""
        self._check_open()
        if len(self.ticket_types) >= MAX_TICKET_TYPES:
            raise TooManyTicketTypes(f"An event has at most {MAX_TICKET_TYPES} ticket types.")
        position = max((t.position for t in self.ticket_types), default=-1) + 1
        new = TicketType(id=uuid.uuid4(), position=position, **fields)
        self._check_type(new)
        updated, changed = self._changed({}, (*self.ticket_types, new), now=now)
        return updated, new, changed

    def update_ticket_type(
        self, ticket_type_id: uuid.UUID, changes: dict[str, Any], *, now: datetime
    ) -> tuple[Event, TicketType, list[str]]:
        """Change a type's fields; returns the event, the type and the event's changed fields
        (none if nothing changed). A new price is for holds made from now on: booking froze the
        price of earlier ones."""
        current = self.ticket_type(ticket_type_id)
        self._check_open()
        edits = {
            k: changes[k]
            for k in TICKET_TYPE_FIELDS
            if k in changes and changes[k] != getattr(current, k)
        }
        if not edits:
            return self, current, []
        new = replace(current, **edits)
        self._check_type(new)
        types = tuple(new if t.id == new.id else t for t in self.ticket_types)
        updated, changed = self._changed({}, types, now=now)
        return updated, new, changed

    def ticket_type(self, ticket_type_id: uuid.UUID) -> TicketType:
        for t in self.ticket_types:
            if t.id == ticket_type_id:
                return t
        raise TicketTypeNotFound("The event has no such ticket type.")

    def _check_open(self) -> None:
        if self.status == "cancelled":
            raise EventCancelledError("A cancelled event cannot be changed.")

    def _check_type(self, new: TicketType) -> None:
        new.check(self.starts_at)
        if any(
            _name_key(t.name) == _name_key(new.name) for t in self.ticket_types if t.id != new.id
        ):
            raise InvalidTicketType("Another ticket type of the event has this name.", field="name")

    def _changed(
        self, new: dict[str, Any], types: tuple[TicketType, ...], *, now: datetime
    ) -> tuple[Event, list[str]]:
        """The event with ``new`` fields and ``types``, its price following the lowest type price,
        its version bumped if anything changed; and the names of what changed."""
        price = min(t.price for t in types)
        if types != self.ticket_types:
            new["ticket_types"] = types
        if price != self.price:
            new["price"] = price
        if not new:
            return self, []
        updated = replace(self, **new, version=self.version + 1, updated_at=now)
        return updated, sorted(new)

    def cancel(self, *, reason: str, now: datetime) -> Event:
        if self.status == "cancelled":
            return self
        return replace(
            self, status="cancelled", cancel_reason=reason, version=self.version + 1, updated_at=now
        )


# --- vouchers ---------------------------------------------------------------------------------

VOUCHER_FIELDS = ("percent_off", "amount_off", "max_uses", "valid_until", "ticket_type_ids")


class VoucherCodeTaken(EventError):
    status, code = 409, "voucher-code-taken"


class VoucherNotFound(EventError):
    status, code = 404, "voucher-not-found"


class InvalidVoucher(EventError):
    """A voucher that breaks a rule spanning several fields (both or neither discount, a ticket
    type of another event, an end already past)."""

    field_in = "body"


@dataclass(frozen=True)
class Voucher:
    """A discount code of an event: ``percent_off`` or ``amount_off`` (exactly one) of the lines
    of ``ticket_type_ids`` (empty: every type), for at most ``max_uses`` bookings at once, until
    ``valid_until``. Booking counts the uses; ``used`` here is learnt from its messages."""

    id: uuid.UUID
    event_id: uuid.UUID
    code: str
    percent_off: Decimal | None
    amount_off: Decimal | None
    max_uses: int
    valid_until: datetime | None
    ticket_type_ids: tuple[uuid.UUID, ...]
    used: int
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def create(cls, event: Event, *, code: str, now: datetime, **fields: Any) -> Voucher:
        event._check_open()
        voucher = cls(
            id=uuid.uuid4(),
            event_id=event.id,
            code=code,
            percent_off=fields.get("percent_off"),
            amount_off=fields.get("amount_off"),
            max_uses=fields["max_uses"],
            valid_until=fields.get("valid_until"),
            ticket_type_ids=tuple(fields.get("ticket_type_ids") or ()),
            used=0,
            version=1,
            created_at=now,
            updated_at=now,
        )
        voucher._check(event, now)
        return voucher

    def update(self, event: Event, changes: dict[str, Any], *, now: datetime) -> Voucher:
        """The voucher with ``changes`` (setting one discount clears the other); same if none."""
        event._check_open()
        new = {k: v for k, v in changes.items() if k in VOUCHER_FIELDS}
        if "ticket_type_ids" in new:
            new["ticket_type_ids"] = tuple(new["ticket_type_ids"] or ())
        if new.get("percent_off") is not None and "amount_off" not in new:
            new["amount_off"] = None
        if new.get("amount_off") is not None and "percent_off" not in new:
            new["percent_off"] = None
        if all(getattr(self, k) == v for k, v in new.items()):
            return self
        updated = replace(self, **new, version=self.version + 1, updated_at=now)
        updated._check(event, now)
        return updated

    def _check(self, event: Event, now: datetime) -> None:
        if (self.percent_off is None) == (self.amount_off is None):
            raise InvalidVoucher(
                "Give exactly one of percent_off and amount_off.", field="percent_off"
            )
        if self.valid_until is not None and self.valid_until <= now:
            raise InvalidVoucher("valid_until must be in the future.", field="valid_until")
        known = {t.id for t in event.ticket_types}
        for n, type_id in enumerate(self.ticket_type_ids):
            if type_id not in known:
                raise InvalidVoucher(
                    "No such ticket type for this event.", field=f"ticket_type_ids.{n}"
                )
        if len(set(self.ticket_type_ids)) != len(self.ticket_type_ids):
            raise InvalidVoucher("Each ticket type once.", field="ticket_type_ids")
