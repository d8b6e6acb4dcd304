"""Prometheus metrics every service serves at ``/metrics``.

HTTP rates and latencies (per route template), message rates and latencies (FastStream's
Prometheus middleware), the outbox backlog and its age, dead-lettered messages, and business
figures services count with :func:`count` (bookings by outcome, sold-out rejections, payment
failures...). One process runs one service, so a module-level registry is enough; every series
carries a ``service`` label anyway so tests running several services in one process stay apart.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from observability.http import KNOWN_METHODS

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests handled",
    ["service", "method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
OUTBOX_BACKLOG = Gauge(
    "outbox_backlog_messages",
    "Outbox rows not yet confirmed by the broker",
    ["service"],
    registry=REGISTRY,
)
OUTBOX_AGE = Gauge(
    "outbox_oldest_message_age_seconds",
    "Age of the oldest unpublished outbox row",
    ["service"],
    registry=REGISTRY,
)
OUTBOX_PUBLISHED = Counter(
    "outbox_published_total",
    "Outbox rows published and confirmed",
    ["service"],
    registry=REGISTRY,
)
DEAD_LETTERED = Counter(
    "messages_dead_lettered_total",
    "Messages this service sent to a dead-letter queue",
    ["service", "reason"],
    registry=REGISTRY,
)
REFUSED = Counter(
    "messages_refused_total",
    "Messages refused (and dead-lettered) because they contradict what this service knows, "
    "e.g. a payment whose amount is not the booking's: a forged or buggy producer",
    ["service", "channel", "reason"],
    registry=REGISTRY,
)
BUSINESS = Counter(
    "business_events_total",
    "Business outcomes, e.g. name=bookings outcome=created|sold_out|confirmed|expired",
    ["service", "name", "outcome"],
    registry=REGISTRY,
)

_service_name = "unknown"


def method_label(method: str) -> str:
    """The method as a label: one of RFC 9110's (and PATCH), else OTHER, so a client inventing
    methods cannot create series without bound."""
    return method if method in KNOWN_METHODS else "OTHER"


def set_service(name: str) -> None:
    global _service_name
    _service_name = name


def count(name: str, outcome: str, n: int = 1, *, service: str | None = None) -> None:
    """Count a business outcome: ``count("bookings", "sold_out")``."""
    BUSINESS.labels(service or _service_name, name, outcome).inc(n)


def dead_lettered(reason: str, *, service: str | None = None) -> None:
    DEAD_LETTERED.labels(service or _service_name, reason).inc()


def refused(channel: str, reason: str, *, service: str | None = None) -> None:
    REFUSED.labels(service or _service_name, channel, reason).inc()


def metrics_response() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


class HttpMetricsMiddleware:
    """Pure ASGI middleware (no BaseHTTPMiddleware overhead) timing every HTTP request."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        # (method, template, status) -> the labelled counter and histogram: ``labels()`` costs a
        # lock and a tuple build per call, a few percent of a short request's CPU.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            if template not in ("/metrics", "/health", "/ready"):
                key = (method_label(scope.get("method", "")), template, status)
                series = self._series.get(key)
                if series is None:
                    series = self._series[key] = (
                        HTTP_REQUESTS.labels(self.service, key[0], template, str(status)),
                        HTTP_LATENCY.labels(self.service, key[0], template),
                    )
                series[0].inc()
                series[1].observe(time.perf_counter() - start)
