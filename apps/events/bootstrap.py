"""Wires the events service: its spec for the kit's app factory."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from apps.events.adapters.booking_capacity import BookingCapacityGuard
from apps.events.entrypoints.http import router
from kit.service import Service, ServiceSpec
from kit.settings import ServiceSettings
from contracts.messages import EventCancelled, EventCreated, EventUpdated


class EventsSettings(ServiceSettings):
    booking_url: str = Field(
        default="http://127.0.0.1:8003",
        description="BOOKING_URL: the booking service, asked to apply a capacity decrease before "
        "it is committed (empty: no check).",
    )
    booking_timeout_seconds: float = Field(default=2.0, gt=0, description="BOOKING_TIMEOUT_SECONDS")


SPEC = ServiceSpec(
    name="events",
    title="Events service",
    description="Organizers create, update and cancel events; anyone can browse them. "
    "Publishes a full snapshot of an event on every change.",
    migrations=Path(__file__).parent / "migrations",
    routers=[router],
    publishes=[EventCreated, EventUpdated, EventCancelled],
    settings_class=EventsSettings,
)


def build(settings: ServiceSettings | None = None, **overrides: object) -> Service:
    service = Service(SPEC, settings, **overrides)
    s = service.settings
    booking_url = getattr(s, "booking_url", "")
    service.api.state.capacity_guard = (
        BookingCapacityGuard(booking_url, timeout=s.booking_timeout_seconds)  # type: ignore[attr-defined]
        if booking_url
        else None
    )
    return service
