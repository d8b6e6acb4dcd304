"""Request bodies of the public API with plausible defaults: a test names only the fields it is
about."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any


def event_body(**over: Any) -> dict[str, Any]:
    """``POST /events/create``: 100 seats at 20.00 EUR, in 30 days."""
    return {
        "title": "PyCon Lisbon",
        "venue": "Altice Arena",
        "starts_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        "capacity": 100,
        "price": "20.00",
        "currency": "EUR",
        **over,
    }


def booking_body(event_id: str, *attendees: str) -> dict[str, Any]:
    """``POST /booking/create``: one seat for each of the named ``attendees``."""
    return {
        "event_id": event_id,
        "quantity": len(attendees),
        "attendees": [{"name": name} for name in attendees],
    }
