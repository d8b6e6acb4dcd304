"""The reverse proxy: one route per service prefix, forwarding over one shared aiohttp session.

Per request, in order: refuse dot segments (400) and methods outside ``METHODS`` (405); verify
the access token unless the route is public (401 here, so no service ever sees an
unauthenticated call to a protected route); spend a rate-limit token (per user, else per peer
address, refusals included: they are answered only if the client is within its limit, else 429);
read the body up to ``MAX_BODY_BYTES`` (413 as soon as it is exceeded, never reading the rest);
forward with hop-by-hop and identity headers removed and ``X-Forwarded-*`` set (replaced: the
client's own values never pass); stream the answer back.

Long-lived answers (Server-Sent Events) are passed through chunk by chunk as they come: a request
that accepts ``text/event-stream`` goes over a second session with no connection limit (a
thousand open streams never starve ordinary requests of upstream connections), an event-stream
answer has no read timeout once its headers came (an idle stream is not an upstream failure),
and a client that goes away closes the upstream connection at once.

It is plain ASGI (a Starlette route), not a FastAPI endpoint: no per-request dependency
resolution or body parsing on the hot path.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from fastapi.responses import JSONResponse
from multidict import CIMultiDict
from opentelemetry.trace import Tracer
from starlette.types import Message, Receive, Scope, Send
from yarl import URL

from kit.problems import PROBLEM_JSON, problem_body
from kit.security import InvalidToken, Principal, TokenVerifier
from gateway.limits import RateLimiter, client_key, retry_after
from gateway.routing import Upstream, has_dot_segment, is_event_stream, is_public
from gateway.tracing import client_span, record_status
from observability import set_span_attributes

log = logging.getLogger(__name__)

# RFC 9110 §7.6.1 connection-specific headers (plus the non-standard ones proxies meet).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
    }
)
# Set by the gateway itself or recomputed; a client's own values are dropped. X-Forwarded-For is
# replaced, not extended: the gateway is the edge, so the peer it sees (or the client a trusted
# balancer reported, see gateway/__main__.py) is all a service should hear; anything a client
# wrote further left would only mislead whoever reads the header naively.
REPLACED_REQUEST = frozenset(
    {
        "host",
        "content-length",
        "expect",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-real-ip",
        "traceparent",
        "tracestate",
    }
)
# Identity assertions a client could forge: services never trust them, and they never get there.
IDENTITY_PREFIXES = (
    "x-user",
    "x-authenticated",
    "x-auth-",
    "x-remote-",
    "remote-user",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "x-principal",
    "x-role",
    "x-email",
    "x-jwt",
    "x-consumer-",
    "x-credential-",
    "x-internal-",
)
# The gateway adds its own (the trace id is the same one); an upstream's would be duplicated.
DROPPED_RESPONSE = frozenset({"server", "date", "x-trace-id"})
SMALL_BODY = 64 * 1024
# What the services serve. Anything else (TRACE, WebDAV's PROPFIND...) is refused here rather
# than handed to code that never expected it.
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
ALLOW = ", ".join(METHODS)


class ClientGone(Exception):  # noqa: N818
    """The client disconnected while sending its body."""


def problem(
    status: int,
    detail: str,
    *,
    code: str,
    instance: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse(
        problem_body(status, detail, code=code, instance=instance, **extra),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_JSON,
    )


def _unauthorized(path: str, detail: str, challenge: str) -> JSONResponse:
    """A 401 answer with the ``WWW-Authenticate`` challenge that says what was wrong."""
    return problem(
        401, detail, code="unauthorized", instance=path, headers={"WWW-Authenticate": challenge}
    )


def _connection_tokens(value: str) -> set[str]:
    return {t.strip().lower() for t in value.split(",") if t.strip()}


def _dropped_request_header(name: str, listed: set[str]) -> bool:
    return (
        name in HOP_BY_HOP
        or name in REPLACED_REQUEST
        or name in listed
        or name.startswith("proxy-")
        or name.startswith(IDENTITY_PREFIXES)
    )


def forward_headers(scope: Scope) -> CIMultiDict[str]:
    """The request headers as the service should see them."""
    raw: list[tuple[bytes, bytes]] = scope["headers"]
    listed: set[str] = set()
    host = ""
    for name_b, value_b in raw:
        if name_b == b"connection":
            listed |= _connection_tokens(value_b.decode("latin-1"))
        elif name_b == b"host":
            host = value_b.decode("latin-1")
    out: CIMultiDict[str] = CIMultiDict()
    for name_b, value_b in raw:
        name = name_b.decode("latin-1").lower()
        if not _dropped_request_header(name, listed):
            out.add(name, value_b.decode("latin-1"))
    client = scope.get("client")
    out["X-Forwarded-For"] = client[0] if client else "unknown"
    out["X-Forwarded-Proto"] = scope.get("scheme", "http")
    if host:
        out["X-Forwarded-Host"] = host
    return out


def response_headers(raw: tuple[tuple[bytes, bytes], ...]) -> list[tuple[bytes, bytes]]:
    """The service's response headers as the client should see them."""
    listed: set[str] = set()
    for name_b, value_b in raw:
        if name_b.lower() == b"connection":
            listed |= _connection_tokens(value_b.decode("latin-1"))
    out = []
    for name_b, value_b in raw:
        name = name_b.decode("latin-1").lower()
        if (
            name in HOP_BY_HOP
            or name in DROPPED_RESPONSE
            or name in listed
            or name.startswith("proxy-")
        ):
            continue
        out.append((name.encode("latin-1"), value_b))
    return out


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return value.decode("latin-1")
    return None


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or ``None`` as soon as it exceeds ``limit`` (the rest is never read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class Proxy:
    """Forwards requests to the services; shares one session, verifier and rate limiter."""

    def __init__(
        self,
        *,
        verifier: TokenVerifier,
        limiter: RateLimiter,
        max_body_bytes: int,
        tracer: Tracer,
    ) -> None:
        self.tracer = tracer
        self.verifier = verifier
        self.limiter = limiter
        self.max_body_bytes = max_body_bytes
        self.session: aiohttp.ClientSession | None = None  # set by the app's lifespan
        # For requests that accept an event stream: no connection limit.
        self.stream_session: aiohttp.ClientSession | None = None

    async def authenticate(self, scope: Scope) -> Principal | JSONResponse:
        path = scope["path"]
        value = _header(scope, b"authorization")
        if not value:
            return _unauthorized(
                path, "An access token is required (Authorization: Bearer <token>).", "Bearer"
            )
        scheme, _, token = value.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return _unauthorized(
                path,
                "The Authorization header must be 'Bearer <access token>'.",
                'Bearer error="invalid_request"',
            )
        try:
            return await self.verifier.verify(token)
        except InvalidToken as exc:
            return _unauthorized(
                path, f"Invalid access token: {exc}.", 'Bearer error="invalid_token"'
            )

    def _body_too_large(self, path: str) -> JSONResponse:
        return problem(
            413,
            f"The body is larger than {self.max_body_bytes} bytes.",
            code="body-too-large",
            instance=path,
            headers={"Connection": "close"},
        )

    async def forward(self, upstream: Upstream, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self._forward(upstream, scope, receive, send)
        if response is not None:
            await response(scope, receive, send)

    async def _forward(  # noqa: C901 - one linear pipeline reads best in one place
        self, upstream: Upstream, scope: Scope, receive: Receive, send: Send
    ) -> JSONResponse | None:
        method: str = scope["method"]
        path: str = scope["path"]
        principal: Principal | None = None
        refusal: JSONResponse | None = None
        if has_dot_segment(path):
            refusal = problem(
                400,
                "The path must not contain '.' or '..' segments.",
                code="bad-path",
                instance=path,
            )
        elif method not in METHODS:
            refusal = problem(
                405,
                f"The method {method} is not supported.",
                code="method-not-allowed",
                instance=path,
                headers={"Allow": ALLOW},
            )
        elif not is_public(method, path):
            outcome = await self.authenticate(scope)
            if isinstance(outcome, JSONResponse):
                refusal = outcome
            else:
                principal = outcome
                set_span_attributes(**{"user.id": principal.user_id})
        elif self.limiter.enabled and _header(scope, b"authorization"):
            # A public route called with a token is limited per user too, as everywhere else
            # (users behind one address do not share a budget). A bad token is not refused
            # here, the route being public: it only counts against the address.
            outcome = await self.authenticate(scope)
            if not isinstance(outcome, JSONResponse):
                principal = outcome

        if self.limiter.enabled:
            # Refusals count too, against the address: a bad token buys no free requests.
            if principal is not None:
                key = f"user:{principal.user_id}"
            else:
                client = scope.get("client")
                key = client_key(client[0] if client else None)
            wait = self.limiter.take(key)
            if wait:
                return problem(
                    429,
                    "Too many requests; slow down.",
                    code="rate-limited",
                    instance=path,
                    headers={"Retry-After": retry_after(wait)},
                )
        if refusal is not None:
            return refusal

        body: bytes | None = None
        length = _header(scope, b"content-length")
        if length is not None:
            if not length.strip().isdigit():
                return problem(400, "Invalid Content-Length.", code="bad-request", instance=path)
            if int(length) > self.max_body_bytes:
                return self._body_too_large(path)
        if (length is not None and length.strip() != "0") or _header(
            scope, b"transfer-encoding"
        ) is not None:
            try:
                body = await read_body(receive, self.max_body_bytes)
            except ClientGone:
                return None
            if body is None:
                return self._body_too_large(path)

        raw_path = scope.get("raw_path") or path.encode()
        query = scope.get("query_string") or b""
        target = upstream.url + raw_path.decode("latin-1")
        if query:
            target += "?" + query.decode("latin-1")
        assert self.session is not None, "the gateway's lifespan did not run"
        try:
            url = URL(target, encoded=True)
        except ValueError:
            return problem(
                400, "The request target is not a valid URL.", code="bad-request", instance=path
            )
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        headers_out = forward_headers(scope)
        session = self.session
        if self.stream_session is not None and (
            "text/event-stream" in headers_out.get("accept", "") or is_event_stream(method, path)
        ):
            session = self.stream_session
        try:
            with client_span(self.tracer, method, url, headers_out, upstream.name) as span:
                async with session.request(
                    method,
                    url,
                    headers=headers_out,
                    data=body,
                    allow_redirects=False,
                ) as resp:
                    record_status(span, resp.status)
                    await self._relay(resp, send_tracked, receive)
                    return None
        except (TimeoutError, aiohttp.ClientError) as exc:
            if started:
                # Too late for a problem response: abort the connection so the client sees a
                # truncated answer rather than a complete-looking one.
                log.warning("upstream %s broke off its answer to %s: %r", upstream.name, path, exc)
                raise
            if isinstance(exc, TimeoutError):
                return self._upstream_failed(504, upstream, path, exc)
            if isinstance(exc, aiohttp.ClientConnectorError):
                return self._upstream_failed(503, upstream, path, exc)
            return self._upstream_failed(502, upstream, path, exc)

    @staticmethod
    async def _relay(resp: aiohttp.ClientResponse, send: Send, receive: Receive) -> None:
        """Stream the service's answer to the client (one write for a small one). A streamed
        answer ends early when the client goes away (the server's ``send`` would otherwise
        swallow every chunk of an endless stream): the upstream connection is closed then."""
        headers = response_headers(resp.raw_headers)
        if resp.content_length is not None and resp.content_length <= SMALL_BODY:
            content = await resp.read()
            await send({"type": "http.response.start", "status": resp.status, "headers": headers})
            await send({"type": "http.response.body", "body": content})
            return
        if resp.content_type == "text/event-stream" and resp.connection is not None:
            # An idle stream (between events and pings) is not a slow upstream: no read timeout.
            protocol = resp.connection.protocol
            if protocol is not None:
                protocol.read_timeout = None
                protocol.start_timeout()  # drops the timer armed by the last read
        await send({"type": "http.response.start", "status": resp.status, "headers": headers})

        async def pump() -> None:
            async for chunk in resp.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})

        pumping = asyncio.ensure_future(pump())
        gone = asyncio.ensure_future(_client_gone(receive))
        try:
            await asyncio.wait({pumping, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            pumping.cancel()
            gone.cancel()
            await asyncio.gather(pumping, gone, return_exceptions=True)
        if pumping.cancelled():
            resp.close()  # the client left: drop the upstream connection, never reuse it
        else:
            pumping.result()  # an upstream that broke off: raise as before

    def _upstream_failed(
        self, status: int, upstream: Upstream, path: str, exc: Exception
    ) -> JSONResponse:
        log.warning(
            "upstream %s failed on %s: %s: %s", upstream.name, path, type(exc).__name__, exc
        )
        detail = {
            504: f"The {upstream.name} service did not answer in time.",
            503: f"The {upstream.name} service is unavailable.",
            502: f"The {upstream.name} service gave no valid answer.",
        }[status]
        code = {504: "upstream-timeout", 503: "upstream-unavailable", 502: "bad-gateway"}[status]
        headers = {"Retry-After": "1"} if status == 503 else None
        return problem(
            status, detail, code=code, instance=path, headers=headers, service=upstream.name
        )


async def _client_gone(receive: Receive) -> None:
    """Returns when the client disconnects (what else it sends now is of no use)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class ProxyRoute:
    """One service's prefix; ``path`` is its route template (span names, ``http.route``)."""

    def __init__(self, proxy: Proxy, upstream: Upstream) -> None:
        self.proxy = proxy
        self.upstream = upstream
        self.path = upstream.prefix + "/{path}"
        self.name = f"proxy:{upstream.name}"

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.proxy.forward(self.upstream, scope, receive, send)
