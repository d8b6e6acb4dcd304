"""Prometheus ``/metrics`` for the auth service, with the same series as every other service
(the kit's registry: HTTP rates and latencies, outbox backlog of the in-process relay, business
counters)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kit import metrics

SERVICE = "auth"
_UNTIMED = frozenset({"/metrics", "/health", "/ready"})


class PrometheusMiddleware:
    """Times every request into the kit's ``http_requests_total`` / ``..._duration_seconds``."""

    async_capable = True
    sync_capable = True

    def __init__(
        self, get_response: Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]]
    ):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def _observe(self, request: HttpRequest, status: int, started: float) -> None:
        if request.path in _UNTIMED:
            return
        match = getattr(request, "resolver_match", None)
        route = "/" + match.route if match is not None and match.route else "unmatched"
        method = metrics.method_label(request.method or "")  # bounded: unknown ones are OTHER
        metrics.HTTP_REQUESTS.labels(SERVICE, method, route, str(status)).inc()
        metrics.HTTP_LATENCY.labels(SERVICE, method, route).observe(time.perf_counter() - started)

    def __call__(self, request: HttpRequest):  # noqa: ANN204 - sync or async by Django's choice
        started = time.perf_counter()
        if iscoroutinefunction(self):
            return self._acall(request, started)
        response = self.get_response(request)
        self._observe(request, response.status_code, started)
        return response

    async def _acall(self, request: HttpRequest, started: float) -> HttpResponse:
        response = await self.get_response(request)  # type: ignore[misc]
        self._observe(request, response.status_code, started)
        return response


def metrics_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(generate_latest(metrics.REGISTRY), content_type=CONTENT_TYPE_LATEST)
