"""Each of the booking service's domain errors carries the answer it is (status, problem code,
extra members); the kit's one handler renders it (the API tests check the bodies)."""

from __future__ import annotations

import pytest

from apps.booking.domain import (
    BookingNotFound,
    CapacityBelowBooked,
    EventChanging,
    EventNotOnSale,
    EventUnknown,
    HoldLimitReached,
    NotCancellable,
    NotEnoughSeats,
    TooManyTickets,
)
from kit.errors import DomainError


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (BookingNotFound("No such booking."), 404, "booking-not-found"),
        (EventUnknown("No such event."), 404, "event-not-found"),
        (EventNotOnSale("The event is cancelled."), 409, "event-cancelled"),
        (EventChanging("Try again."), 409, "event-changing"),
        (
            NotEnoughSeats("Not enough seats left.", requested=3, available=1),
            409,
            "not-enough-seats",
        ),
        (HoldLimitReached("Too many held.", limit=10), 409, "hold-limit-reached"),
        (NotCancellable("Expired.", booking_status="expired"), 409, "booking-not-cancellable"),
        (
            CapacityBelowBooked("Below.", field="capacity", held=1, sold=2),
            409,
            "capacity-below-booked",
        ),
    ],
)
def test_error_carries_its_answer(error: DomainError, status: int, code: str) -> None:
    assert isinstance(error, DomainError)
    assert (error.status, error.code, error.errors) == (status, code, None)


def test_extra_members_travel_with_the_error() -> None:
    assert NotEnoughSeats("No.", requested=3, available=1).extra == {"requested": 3, "available": 1}


def test_too_many_tickets_names_the_quantity() -> None:
    error = TooManyTickets("At most 10 seats per booking.", field="quantity", limit=10)
    assert (error.status, error.code, error.extra) == (422, "validation-error", {"limit": 10})
    assert error.errors == [
        {
            "field": "body.quantity",
            "type": "too_many_tickets",
            "message": "At most 10 seats per booking.",
        }
    ]
