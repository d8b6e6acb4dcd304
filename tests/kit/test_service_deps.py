"""A service's dependencies are one typed object built with the service (``ServiceSpec.deps``),
reached by routes through a FastAPI dependency and by subscribers through ``TheirDeps.of``,
instead of attributes hung on the app or the service."""

from __future__ import annotations

import pytest

from apps.analytics.bootstrap import build as build_analytics
from apps.events.bootstrap import build as build_events
from apps.events.config import EventsSettings
from apps.events.deps import EventsDeps
from kit.deps import ServiceDeps


def test_a_service_gets_its_own_typed_deps() -> None:
    events = build_events(booking_url="http://booking.invalid:8003")
    deps = EventsDeps.of(events)
    assert deps.db is events.db and isinstance(deps.settings, EventsSettings)
    assert deps.capacity_guard is not None
    assert deps.capacity_guard.booking_url == "http://booking.invalid:8003"
    assert EventsDeps.of(build_events(booking_url="")).capacity_guard is None


def test_a_service_without_adapters_gets_the_kits() -> None:
    analytics = build_analytics()
    assert type(analytics.deps) is ServiceDeps and analytics.deps.db is analytics.db


def test_asking_for_another_services_deps_fails_at_once() -> None:
    with pytest.raises(TypeError, match="analytics has ServiceDeps, not EventsDeps"):
        EventsDeps.of(build_analytics())


def test_deps_are_not_request_parameters() -> None:
    schema = build_events().api.openapi()
    parameters = [
        p["name"]
        for item in schema["paths"].values()
        for op in item.values()
        for p in op.get("parameters", [])
    ]
    assert "deps" not in parameters and "request" not in parameters
