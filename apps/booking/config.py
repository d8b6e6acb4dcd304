"""Settings of the booking service (environment variables, all optional)."""

from __future__ import annotations

from pydantic import Field

from kit.settings import ServiceSettings


class BookingSettings(ServiceSettings):
    booking_hold_seconds: int = Field(
        default=600,
        ge=0,
        description="BOOKING_HOLD_SECONDS: how long a pending booking holds its seats.",
    )
    max_tickets_per_booking: int = Field(
        default=10, ge=1, description="MAX_TICKETS_PER_BOOKING: most seats one booking may take."
    )
    max_seats_held_per_user: int = Field(
        default=20,
        ge=1,
        description="MAX_SEATS_HELD_PER_USER: most seats one user may hold at once across all "
        "their pending bookings (so nobody can hold a whole event).",
    )
    booking_sweep_interval_seconds: float = Field(
        default=1.0,
        ge=0,
        description="BOOKING_SWEEP_INTERVAL_SECONDS: pause between hold-expiry sweeps; 0 turns "
        "this replica's sweeper off.",
    )
    booking_sweep_batch_size: int = Field(
        default=500, ge=1, description="BOOKING_SWEEP_BATCH_SIZE: holds expired per transaction."
    )
    booking_availability_cache_seconds: float = Field(
        default=0.5,
        ge=0,
        description="BOOKING_AVAILABILITY_CACHE_SECONDS: how long a replica refuses a sold-out "
        "(or cancelled) event from memory before reading it again; seats that come back may be "
        "refused for this long. 0 reads the database on every attempt.",
    )
    booking_live_interval_seconds: float = Field(
        default=0.25,
        gt=0,
        description="BOOKING_LIVE_INTERVAL_SECONDS: how often this replica reads the availability "
        "of the events it has open streams for (one statement for all of them) and sends the "
        "changes.",
    )
    booking_live_ping_seconds: float = Field(
        default=15.0,
        gt=0,
        description="BOOKING_LIVE_PING_SECONDS: keep-alive comment on an idle availability stream "
        "(below the idle timeout of proxies between the client and the gateway, often 60 s).",
    )
