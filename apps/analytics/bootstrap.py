"""Wires the analytics service: its spec for the kit's app factory."""

from __future__ import annotations

from pathlib import Path

from apps.analytics.entrypoints.http import router
from apps.analytics.entrypoints.messages import subscribe
from kit.service import Service, ServiceSpec
from kit.settings import ServiceSettings

SPEC = ServiceSpec(
    name="analytics",
    resource="reports",
    niceness=10,  # off the booking path: yields the CPU to it (kit.runtime.set_niceness)
    title="Analytics service",
    description="Counts bookings, tickets, payments and revenue from the `analytics` channel "
    "into its own read model, and reports them to organizers (their events) and admins (all), "
    "as JSON, CSV or a daily series. Publishes nothing.",
    migrations=Path(__file__).parent / "migrations",
    routers=[router],
    subscribe=subscribe,
)


def build(settings: ServiceSettings | None = None, **overrides: object) -> Service:
    return Service(SPEC, settings, **overrides)
