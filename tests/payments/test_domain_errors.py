"""Each of the payments service's domain errors carries the answer it is (status, problem code,
the field it is about); the kit's one handler renders it (the API tests check the bodies)."""

from __future__ import annotations

import pytest

from apps.payments.domain import (
    BookingAlreadyPaid,
    BookingCancelled,
    BookingExpired,
    BookingNotFound,
    BookingPaymentFailed,
    InvalidPaymentMethod,
    PaymentNotFound,
    ProviderError,
    ProviderIdempotencyConflict,
)
from kit.errors import DomainError


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (BookingNotFound(), 404, "booking-not-found"),
        (PaymentNotFound("No such payment."), 404, "payment-not-found"),
        (BookingAlreadyPaid("Paid."), 409, "booking-already-paid"),
        (BookingPaymentFailed("Failed."), 409, "booking-payment-failed"),
        (BookingExpired("Expired."), 409, "booking-expired"),
        (BookingCancelled("Cancelled."), 409, "booking-cancelled"),
        (ProviderIdempotencyConflict("Other parameters."), 409, "payment-attempt-conflict"),
        (ProviderError("Refund too large."), 502, "payment-provider-error"),
    ],
)
def test_error_carries_its_answer(error: DomainError, status: int, code: str) -> None:
    assert isinstance(error, DomainError)
    assert (error.status, error.code, error.errors) == (status, code, None)


def test_an_invalid_payment_method_is_about_the_token() -> None:
    error = InvalidPaymentMethod("The card token is not valid.")
    assert (error.status, error.code) == (422, "invalid-payment-method")
    assert error.errors == [
        {
            "field": "body.payment_method.token",
            "type": "value_error",
            "message": "The card token is not valid.",
        }
    ]


def test_a_provider_failure_without_words_still_says_what_failed() -> None:
    assert ProviderError().detail == "The payment provider failed."
