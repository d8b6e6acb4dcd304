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


def _dependency_calls(dependant):  # type: ignore[no-untyped-def]
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _dependency_calls(sub)


@pytest.mark.parametrize("service", ["events", "booking", "payments", "notifications", "analytics"])
def test_no_route_dependency_runs_in_the_thread_pool(service: str) -> None:
    """FastAPI runs a plain ``def`` dependency in its thread pool: a thread hop per request for
    what never waits. Every dependency of every route is a coroutine function (or an object with
    an async ``__call__``, as FastAPI's security schemes are)."""
    import importlib
    import inspect

    from fastapi.routing import APIRoute

    def api_routes(routes):  # type: ignore[no-untyped-def]
        for route in routes:
            if isinstance(route, APIRoute):
                yield route
            elif (included := getattr(route, "original_router", None)) is not None:
                yield from api_routes(included.routes)  # FastAPI's include_router wrapper

    built = importlib.import_module(f"apps.{service}.bootstrap").build()
    routes = list(api_routes(built.api.routes))
    assert routes, "no API route found: the walk above no longer matches FastAPI"
    sync = {
        getattr(call, "__qualname__", repr(call))
        for route in routes
        for call in _dependency_calls(route.dependant)
        if not (
            inspect.iscoroutinefunction(call)
            or inspect.iscoroutinefunction(getattr(call, "__call__", None))
        )
    }
    assert sync == set()
