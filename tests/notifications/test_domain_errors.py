"""The notifications service's domain error carries the answer it is (status, problem code,
the field it is about); the kit's one handler renders it (the API tests check the bodies)."""

from __future__ import annotations

from apps.notifications.domain import NoAddress
from kit.errors import DomainError


def test_no_address_is_a_422_about_the_channel() -> None:
    error = NoAddress("The user has no address for the sms channel.")
    assert isinstance(error, DomainError)
    assert (error.status, error.code) == (422, "no-address")
    assert error.errors == [
        {
            "field": "body.channel",
            "type": "value_error",
            "message": "The user has no address for the sms channel.",
        }
    ]
