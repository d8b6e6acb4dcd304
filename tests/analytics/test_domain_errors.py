"""The analytics service's domain errors carry the answer they are (status, problem code, the
query field they are about); the kit's one handler renders them (the API tests check them)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from apps.analytics.domain import InvalidWindow, ReportNotFound, Window
from kit.errors import DomainError


def test_unknown_event_is_a_404() -> None:
    assert issubclass(ReportNotFound, DomainError)
    error = ReportNotFound("No such event.")
    assert (error.status, error.code, error.errors) == (404, "event-not-found", None)


def test_a_bad_window_is_a_422_about_its_query_field() -> None:
    with pytest.raises(InvalidWindow) as raised:
        Window(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
    error = raised.value
    assert (error.status, error.code) == (422, "validation-error")
    assert error.errors == [
        {"field": "query.from", "message": "`from` must not be after `to`.", "type": "value_error"}
    ]
