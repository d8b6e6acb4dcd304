"""Wires the booking service: its spec for the kit's app factory."""

from __future__ import annotations

from pathlib import Path

from apps.booking.config import BookingSettings
from apps.booking.deps import BookingDeps
from apps.booking.entrypoints.early_refusal import EarlyRefusal
from apps.booking.entrypoints.http import internal_router, router
from apps.booking.entrypoints.live import live_availability_watcher
from apps.booking.entrypoints.live import router as live_router
from apps.booking.entrypoints.http_waitlist import router as waitlist_router
from apps.booking.entrypoints.messages import subscribe
from apps.booking.entrypoints.sweeper import hold_expiry_sweeper
from kit.service import Service, ServiceSpec
from kit.settings import ServiceSettings
from contracts.messages import (
    BookingCancelled,
    BookingConfirmed,
    BookingCreated,
    BookingExpired,
    RefundRequested,
    TicketCheckedIn,
    WaitlistOffered,
)

SPEC = ServiceSpec(
    name="booking",
    resource="bookings",
    title="Booking service",
    description="Holds seats without ever overselling, confirms them when paid, expires "
    "unpaid holds, cancels and refunds. Keeps its own inventory per event from the events "
    "service's snapshots.",
    migrations=Path(__file__).parent / "migrations",
    routers=[waitlist_router, router, live_router, internal_router],
    publishes=[
        BookingCreated,
        BookingConfirmed,
        BookingCancelled,
        BookingExpired,
        RefundRequested,
        TicketCheckedIn,
        WaitlistOffered,
    ],
    subscribe=subscribe,
    background=[hold_expiry_sweeper, live_availability_watcher],
    settings_class=BookingSettings,
    deps=BookingDeps.build,
    http_middleware=[EarlyRefusal],
)


def build(settings: ServiceSettings | None = None, **overrides: object) -> Service:
    return Service(SPEC, settings, **overrides)
