"""Wires the events service: its spec for the kit's app factory."""

from __future__ import annotations

from pathlib import Path

from apps.events.config import EventsSettings
from apps.events.deps import EventsDeps
from apps.events.entrypoints.http import router
from apps.events.entrypoints.messages import subscribe
from apps.events.entrypoints.worker import keep_bindings
from kit.service import Service, ServiceSpec
from kit.settings import ServiceSettings
from contracts.messages import (
    EventCancelled,
    EventCreated,
    EventUpdated,
    VoucherCreated,
    VoucherUpdated,
)


SPEC = ServiceSpec(
    name="events",
    title="Events service",
    description="Organizers create, update and cancel events; anyone can browse them. "
    "Publishes a full snapshot of an event on every change, and of a voucher; counts "
    "vouchers' uses from booking's messages.",
    migrations=Path(__file__).parent / "migrations",
    routers=[router],
    publishes=[EventCreated, EventUpdated, EventCancelled, VoucherCreated, VoucherUpdated],
    subscribe=subscribe,
    background=[keep_bindings],
    settings_class=EventsSettings,
    deps=EventsDeps.build,
)


def build(settings: ServiceSettings | None = None, **overrides: object) -> Service:
    return Service(SPEC, settings, **overrides)
