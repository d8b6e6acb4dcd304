"""Settings of the events service (environment variables, on top of the kit's)."""

from __future__ import annotations

from pydantic import Field

from kit.settings import ServiceSettings


class EventsSettings(ServiceSettings):
    booking_url: str = Field(
        default="http://127.0.0.1:8003",
        description="BOOKING_URL: the booking service, asked to apply a capacity decrease before "
        "it is committed (empty: no check).",
    )
    booking_timeout_seconds: float = Field(default=2.0, gt=0, description="BOOKING_TIMEOUT_SECONDS")
