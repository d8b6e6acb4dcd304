"""Each of the events service's domain errors carries the answer it is (status, problem code);
the kit's one handler renders it (the API tests check the bodies)."""

from __future__ import annotations

import pytest

from apps.events.adapters.booking_capacity import CapacityBelowBooked, CapacityCheckUnavailable
from apps.events.domain import EventCancelledError, EventNotFound, InvalidSchedule, NotAllowed
from kit.errors import DomainError


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (EventNotFound, 404, "event-not-found"),
        (NotAllowed, 403, "not-event-owner"),
        (EventCancelledError, 409, "event-cancelled"),
        (CapacityBelowBooked, 409, "capacity-below-booked"),
        (CapacityCheckUnavailable, 503, "booking-unavailable"),
        (InvalidSchedule, 422, "validation-error"),
    ],
)
def test_error_carries_its_answer(error: type[DomainError], status: int, code: str) -> None:
    assert issubclass(error, DomainError)
    assert (error.status, error.code) == (status, code)


def test_schedule_error_names_the_body_field() -> None:
    error = InvalidSchedule("The event must end after it starts.", field="ends_at")
    assert error.errors == [
        {
            "field": "body.ends_at",
            "message": "The event must end after it starts.",
            "type": "value_error",
        }
    ]


def test_booking_unavailable_asks_to_retry() -> None:
    assert CapacityCheckUnavailable("down").headers == {"Retry-After": "1"}
    # a capacity below the booked seats is a conflict, not a field error
    assert CapacityBelowBooked("below", field="capacity").errors is None
