"""The event aggregate and its rules. No I/O here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from kit.errors import DomainError

EventStatus = Literal["scheduled", "cancelled"]

MAX_CAPACITY = 100_000
EDITABLE = (
    "title",
    "description",
    "venue",
    "starts_at",
    "ends_at",
    "capacity",
    "price",
    "currency",
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

    @classmethod
    def create(cls, *, organizer_id: uuid.UUID, now: datetime, **fields: Any) -> Event:
        event = cls(
            id=uuid.uuid4(),
            organizer_id=organizer_id,
            status="scheduled",
            version=1,
            created_at=now,
            updated_at=now,
            **fields,
        )
        event._check_schedule(now)
        return event

    def _check_schedule(self, now: datetime) -> None:
        if self.starts_at <= now:
            raise InvalidSchedule("The event must start in the future.", field="starts_at")
        if self.ends_at is not None and self.ends_at <= self.starts_at:
            raise InvalidSchedule("The event must end after it starts.", field="ends_at")

    def can_be_managed_by(self, user_id: uuid.UUID, *, is_admin: bool) -> bool:
        return is_admin or self.organizer_id == user_id

    def update(self, changes: dict[str, Any], *, now: datetime) -> tuple[Event, list[str]]:
        """Apply ``changes``; returns the new event and the names of the fields that changed."""
        if self.status == "cancelled":
            raise EventCancelledError("A cancelled event cannot be changed.")
        changed = [k for k in EDITABLE if k in changes and changes[k] != getattr(self, k)]
        if not changed:
            return self, []
        updated = replace(
            self, **{k: changes[k] for k in changed}, version=self.version + 1, updated_at=now
        )
        if "starts_at" in changed and updated.starts_at <= now:
            raise InvalidSchedule("The event must start in the future.", field="starts_at")
        if updated.ends_at is not None and updated.ends_at <= updated.starts_at:
            raise InvalidSchedule("The event must end after it starts.", field="ends_at")
        return updated, changed

    def cancel(self, *, reason: str, now: datetime) -> Event:
        if self.status == "cancelled":
            return self
        return replace(
            self, status="cancelled", cancel_reason=reason, version=self.version + 1, updated_at=now
        )
