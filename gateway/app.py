"""Builds the gateway: the proxy routes, its own operational and docs routes, tracing, CORS.

``create_app(settings)`` returns the ASGI app (a fast dispatcher in front of a FastAPI app for
the gateway's own routes); ``gateway.main`` is the process entry point.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from kit import assets
from kit.problems import install_problem_handlers, problem_response
from kit.runtime import settle_heap
from kit.security import TokenVerifier
from gateway.config import GatewaySettings
from gateway.docs import OpenAPIAggregator, asyncapi_index_page
from gateway.limits import RateLimiter, client_key, retry_after
from gateway.proxy import Proxy, ProxyRoute, problem
from gateway.routing import Upstream, routing_table
from gateway.tracing import edge_tracing, tracer_for
from observability import configure_tracing

log = logging.getLogger(__name__)


class Gateway:
    """The front door: a request under a service prefix goes straight to the proxy (no
    framework work on the hot path); everything else (the gateway's own routes, unknown paths,
    lifespan) goes to the FastAPI app."""

    def __init__(self, api: FastAPI, routes: list[ProxyRoute]) -> None:
        self.api = api
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            for route in self.routes:
                if route.upstream.serves(path):
                    scope["route"] = route
                    await route.handle(scope, receive, send)
                    return
        await self.api(scope, receive, send)


def _session(settings: GatewaySettings, *, streams: bool = False) -> aiohttp.ClientSession:
    """The upstream session; with ``streams``, the one for requests that accept an event
    stream: no connection limit, as each open stream holds a connection (the proxy lifts the
    read timeout of an event-stream answer once its headers came)."""
    connector = aiohttp.TCPConnector(
        limit=0 if streams else settings.upstream_max_connections,
        keepalive_timeout=settings.upstream_keepalive_seconds,
        ttl_dns_cache=300,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(
            total=None,
            connect=settings.upstream_timeout_seconds,  # includes waiting for a free connection
            sock_connect=settings.upstream_connect_timeout_seconds,
            sock_read=settings.upstream_timeout_seconds,
        ),
        # Pass bodies and headers through as they are: no decompression, no cookies kept
        # between clients, no headers the client did not send.
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        trust_env=False,
    )


def create_app(settings: GatewaySettings | None = None) -> ASGIApp:
    settings = settings or GatewaySettings()
    tracer = tracer_for(configure_tracing("gateway"))
    upstreams = routing_table(settings.upstream_urls())
    limiter = RateLimiter(settings.gateway_rate_limit, settings.rate_burst)
    proxy = Proxy(
        verifier=TokenVerifier.from_settings(settings),
        limiter=limiter,
        max_body_bytes=settings.max_body_bytes,
        tracer=tracer,
    )
    aggregator = OpenAPIAggregator(
        upstreams, ttl=settings.openapi_cache_seconds, timeout=settings.ready_timeout_seconds
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        proxy.session = _session(settings)
        proxy.stream_session = _session(settings, streams=True)
        settle_heap()
        try:
            yield
        finally:
            await proxy.session.close()
            await proxy.stream_session.close()

    api = FastAPI(
        title="API gateway",
        version="1.0.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # /openapi.json is the merged document of the services
        redirect_slashes=False,  # /auth is not /auth/: no redirect into a service
        # One server span per request comes from edge_tracing, for proxied and own routes alike.
        **_no_native_telemetry(),
    )
    api.state.settings = settings
    api.state.proxy = proxy
    install_problem_handlers(api)
    api.include_router(_own_routes(settings, proxy, upstreams, aggregator, limiter))
    assets.mount(api)

    app: ASGIApp = Gateway(api, [ProxyRoute(proxy, u) for u in upstreams])
    if settings.cors_origins:
        app = CORSMiddleware(
            app,
            allow_origins=settings.cors_origins,
            allow_credentials="*" not in settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Trace-Id", "Retry-After", "Location"],
            max_age=600,
        )
    return edge_tracing(app, tracer)


def _no_native_telemetry() -> dict[str, Any]:
    """FastAPI >= 0.160 traces requests itself unless told not to (older versions have no
    such parameter)."""
    import inspect

    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        return {
            "telemetry": {
                "tracing": False,
                "metrics": False,
                "logs": False,
                "operation_spans": False,
            }
        }
    return {}


def _own_routes(
    settings: GatewaySettings,
    proxy: Proxy,
    upstreams: list[Upstream],
    aggregator: OpenAPIAggregator,
    limiter: RateLimiter,
) -> APIRouter:
    by_name = {u.name: u for u in upstreams}

    async def rate_limited(request: Request) -> None:
        """The gateway's own routes that call services are limited per address too."""
        if limiter.enabled:
            client = request.client
            wait = limiter.take(client_key(client.host if client else None))
            if wait:
                from kit.problems import TooManyRequests

                raise TooManyRequests(
                    "Too many requests; slow down.",
                    code="rate-limited",
                    headers={"Retry-After": retry_after(wait)},
                )

    router = APIRouter(include_in_schema=False)
    limited = [Depends(rate_limited)]

    @router.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": "gateway"}

    @router.get("/ready", dependencies=limited)
    async def ready() -> JSONResponse:
        """Each service's status and nothing more: what a service's own /ready says is wrong
        (a database host, a broker error) and why a connection failed are for operators, so
        they go to the log, not to the public."""
        assert proxy.session is not None
        session = proxy.session

        async def check(upstream: Upstream) -> dict[str, str]:
            try:
                timeout = aiohttp.ClientTimeout(total=settings.ready_timeout_seconds)
                async with session.get(f"{upstream.url}/ready", timeout=timeout) as resp:
                    if resp.status == 200:
                        return {"status": "ready"}
                    body = await resp.content.read(500)
                    log.warning(
                        "service %s is not ready (HTTP %s): %s",
                        upstream.name,
                        resp.status,
                        body.decode("utf-8", "replace"),
                    )
                    return {"status": "not ready"}
            except (TimeoutError, aiohttp.ClientError) as exc:
                log.warning("service %s is unreachable: %r", upstream.name, exc)
                return {"status": "unreachable"}

        results = await asyncio.gather(*(check(u) for u in upstreams))
        services = {u.name: r for u, r in zip(upstreams, results, strict=True)}
        if all(r["status"] == "ready" for r in services.values()):
            return JSONResponse({"status": "ready", "service": "gateway", "services": services})
        down = sorted(name for name, r in services.items() if r["status"] != "ready")
        return problem_response(
            503,
            f"Not ready: {', '.join(down)}.",
            code="not-ready",
            services=services,
        )

    @router.get("/openapi.json", dependencies=limited)
    async def openapi() -> JSONResponse:
        assert proxy.session is not None
        return JSONResponse(await aggregator.document(proxy.session))

    @router.get("/docs")
    async def docs() -> HTMLResponse:
        return assets.swagger_page("Event booking platform", "/openapi.json")

    @router.get("/asyncapi")
    async def asyncapi_index() -> HTMLResponse:
        return HTMLResponse(asyncapi_index_page(upstreams))

    async def service_asyncapi(request: Request, service: str, suffix: str) -> Response:
        upstream = by_name.get(service)
        if upstream is None:
            return problem(
                404, f"No service named {service!r}.", code="not-found", instance=request.url.path
            )
        assert proxy.session is not None
        url = f"{upstream.url}/asyncapi{suffix}"
        try:
            timeout = aiohttp.ClientTimeout(total=settings.ready_timeout_seconds * 2)
            async with proxy.session.get(url, timeout=timeout) as resp:
                body = await resp.read()
                if resp.status != 200:
                    return problem(
                        502,
                        f"The {service} service could not give its AsyncAPI "
                        f"document (HTTP {resp.status}).",
                        code="bad-gateway",
                        instance=request.url.path,
                        service=service,
                    )
                media = resp.headers.get("Content-Type", "application/octet-stream")
                return Response(body, media_type=media)
        except (TimeoutError, aiohttp.ClientError):
            return problem(
                503,
                f"The {service} service is unavailable.",
                code="upstream-unavailable",
                instance=request.url.path,
                headers={"Retry-After": "1"},
                service=service,
            )

    @router.get("/asyncapi/{service}.json", dependencies=limited)
    async def asyncapi_json(request: Request, service: str) -> Response:
        return await service_asyncapi(request, service, ".json")

    @router.get("/asyncapi/{service}", dependencies=limited)
    async def asyncapi_page(request: Request, service: str) -> Response:
        return await service_asyncapi(request, service, "")

    return router
