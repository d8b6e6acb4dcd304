"""The SERVER span of each HTTP request, for the services and the gateway alike.

One pure-ASGI middleware: the caller's W3C ``traceparent`` is continued (a new trace otherwise),
the span is current while the app runs (so logs, outbox rows and downstream calls carry its
context), it is named ``METHOD /route/template`` once the router has matched, and it records the
response status and any exception.

Why not FastAPI's own request telemetry (``FastAPI(telemetry=...)``) or
``opentelemetry-instrumentation-asgi``: measured in-process on a booking request that the
service refuses from memory, FastAPI's telemetry layer cost ~75 us per request even with spans
not recorded, more than the rest of that request's handling (~64 us); the ASGI instrumentation
costs more still (see ``gateway/tracing.py``). This middleware makes the same context and the
attributes that matter for ~20 us.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CrashAnswer = Callable[[Scope, Receive, Send], Awaitable[None]]


class ScopeHeaders(Getter[Scope]):
    """Reads propagation headers straight from an ASGI scope's raw (lower-case, by the ASGI
    spec) header list. ``opentelemetry-instrumentation-asgi``'s getter decodes every header of
    the request for each key the propagators ask for (traceparent, tracestate, baggage): ~20 us
    per request, measured."""

    def get(self, carrier: Scope, key: str) -> list[str] | None:
        name = key.lower().encode("latin-1")
        values = [value.decode("latin-1") for n, value in carrier["headers"] if n == name]
        return values or None

    def keys(self, carrier: Scope) -> list[str]:
        return [n.decode("latin-1") for n, _ in carrier["headers"]]


SCOPE_HEADERS = ScopeHeaders()

# OpenTelemetry's HTTP conventions: a method outside RFC 9110's list and PATCH is "_OTHER" and
# the span is named "HTTP ...", so a client inventing methods cannot create names without bound
# (span names feed metrics derived from traces). The method as sent stays an attribute.
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)


class ServerSpans:
    """ASGI middleware: a SERVER span per HTTP request (see the module's docstring).

    ``trace_id_header`` adds ``X-Trace-Id`` to every response (the gateway: clients quote it).
    ``on_crash`` answers a request whose app raised before starting a response (the gateway:
    a 500 problem); without it the exception goes on up (a FastAPI app's own error handler
    answers). ``untraced_paths`` (health checks, metrics scrapes) get no span.
    """

    def __init__(
        self,
        app: ASGIApp,
        tracer: Tracer | None = None,
        *,
        trace_id_header: bool = False,
        on_crash: CrashAnswer | None = None,
        untraced_paths: Collection[str] = (),
    ) -> None:
        self.app = app
        self.tracer = tracer or trace.get_tracer("eventbooking.http")
        self.trace_id_header = trace_id_header
        self.on_crash = on_crash
        self.untraced_paths = frozenset(untraced_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.untraced_paths:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        parent = extract(scope, getter=SCOPE_HEADERS)
        client = scope.get("client")
        attributes = {
            "http.request.method": method,
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
            "client.address": client[0] if client else "",
        }
        if method not in KNOWN_METHODS:
            attributes["http.request.method"] = "_OTHER"
            attributes["http.request.method_original"] = method
            method = "HTTP"
        span = self.tracer.start_span(
            method, context=parent, kind=SpanKind.SERVER, attributes=attributes
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        trace_header = None
        if self.trace_id_header and (trace_id := span.get_span_context().trace_id):
            trace_header = (b"x-trace-id", f"{trace_id:032x}".encode())
        status = 0

        async def send_traced(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if trace_header:
                    message = {**message, "headers": [*message.get("headers", ()), trace_header]}
            await send(message)

        try:
            await self.app(scope, receive, send_traced)
        except Exception as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            if status or self.on_crash is None:
                raise  # already answering (the server cuts the connection), or not ours to answer
            await self.on_crash(scope, receive, send_traced)
        finally:
            route = getattr(scope.get("route"), "path", None)
            if route:
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
            if status:
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            span.end()
            otel_context.detach(token)
