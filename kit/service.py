"""The app factory: one FastStream RabbitMQ app plus its FastAPI routes, wired the same way for
every service.

A service describes itself with a :class:`ServiceSpec` (its routers, what it publishes, how it
subscribes, its migrations, its background workers); :class:`Service` builds the broker, the
database, the outbox relay, the token verifier, the FastStream app (for AsyncAPI) and the FastAPI
app (routes, ``/health``, ``/ready``, ``/asyncapi``, problem details, tracing) from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from faststream import FastStream
from faststream.rabbit import RabbitBroker
from faststream.rabbit.publisher import RabbitPublisher  # what broker.publisher() returns
from faststream.specification import AsyncAPI
from faststream.specification.asyncapi.site import get_asyncapi_html

from kit import assets, metrics
from kit.db import Database
from kit.deps import ServiceDeps
from kit.broker import make_broker
from kit.publishing import declare_publishers, outbox_publish
from kit.asyncapi import SCHEMA_VERSION, ServiceAsyncAPI
from kit.openapi import unique_id_function
from kit.outbox import OutboxRelay
from kit.problems import (
    LimitRequestBody,
    RejectNulCharacters,
    install_problem_handlers,
    problem_response,
)
from kit.runtime import set_niceness, settle_heap
from kit.security import TokenVerifier
from kit.settings import API_VERSION, ServiceSettings
from observability.http import ServerSpans
from contracts.envelope import Envelope
from contracts.topology import declare_topology

log = logging.getLogger(__name__)

_UNTRACED_PATHS = frozenset({"/health", "/ready", "/metrics"})


@dataclass
class ServiceSpec:
    name: str
    title: str
    description: str
    migrations: Path | None
    routers: Sequence[APIRouter] = ()
    publishes: Sequence[type[Envelope]] = ()
    subscribe: Callable[[Service], None] | None = None
    background: Sequence[Callable[[Service], Coroutine[Any, Any, None]]] = ()
    settings_class: type[ServiceSettings] = ServiceSettings
    # Builds the service's typed dependencies (kit.deps) once, from its database and settings:
    # a service with adapters of its own gives its ServiceDeps subclass's ``build``.
    deps: Callable[[Service], ServiceDeps] = ServiceDeps.build
    # ASGI middleware of the service's own, innermost (inside tracing, metrics and the NUL
    # check), each made as ``middleware(app, service=the_service)``.
    http_middleware: Sequence[Any] = ()  # ASGI middleware classes taking (app, service=...)
    # The process's scheduler niceness unless PROCESS_NICENESS says otherwise (see
    # kit.runtime.set_niceness): 10 for consumers off the booking path.
    niceness: int = 0
    openapi_tags: list[dict[str, Any]] = field(default_factory=list)
    # The first word of every operation id (kit.openapi): ``bookings`` makes ``bookings_create``.
    # Empty: the service's name.
    resource: str = ""


class Service:
    """A running (or runnable) service: everything wired, nothing started until ``start()``."""

    def __init__(
        self, spec: ServiceSpec, settings: ServiceSettings | None = None, **overrides: Any
    ) -> None:
        self.spec = spec
        self.settings = settings or spec.settings_class(service_name=spec.name, **overrides)
        self.settings.service_name = spec.name
        metrics.set_service(spec.name)
        self.db = Database(self.settings, spec.migrations)
        self.broker: RabbitBroker = make_broker(self.settings)
        self.deps = spec.deps(self)
        self.publishers: dict[str, RabbitPublisher] = declare_publishers(
            self.broker, spec.publishes
        )
        if spec.subscribe is not None:
            spec.subscribe(self)
        self.relay = OutboxRelay(
            self.db,
            outbox_publish(self.publishers),
            batch_size=self.settings.outbox_batch_size,
            poll_seconds=self.settings.outbox_poll_seconds,
            handoff=self.settings.outbox_handoff,
            handoff_grace_seconds=self.settings.outbox_handoff_grace_seconds,
        )
        self.token_verifier = TokenVerifier.from_settings(self.settings)
        self.asyncapi = ServiceAsyncAPI(
            spec.name,
            AsyncAPI(
                self.broker,
                title=spec.title,
                version=API_VERSION,
                description=spec.description,
                schema_version=SCHEMA_VERSION,
                identifier=f"urn:eventbooking:{spec.name}",
                license={"name": "MIT", "url": "https://opensource.org/license/mit"},
                contact={
                    "name": "Event Booking Platform maintainers",
                    "url": "https://eventbooking.dev",
                },
                tags=[{"name": "eventbooking"}, {"name": spec.name}],
            ),
        )
        self.stream = FastStream(self.broker, specification=self.asyncapi.spec)
        self._tasks: list[asyncio.Task[Any]] = []
        self.api = self._build_api()

    # --- lifecycle ----------------------------------------------------------------------------

    def configure_process(self) -> None:
        """What the service's own process (``apps.<name>.main``) sets up before serving: its
        scheduler niceness. Not for services started inside another process (tests)."""
        niceness = self.settings.process_niceness
        set_niceness(self.spec.niceness if niceness is None else niceness)

    async def start(self, *, connect_broker: bool = True) -> None:
        await self.db.prepare()
        if connect_broker:
            await self.broker.connect()
            await declare_topology(self.broker)
            await self.broker.start()
        if self.settings.outbox_relay:
            self._tasks.append(asyncio.create_task(self.relay.run(), name="outbox-relay"))
        for worker in self.spec.background:
            self._tasks.append(asyncio.create_task(worker(self), name=worker.__name__))

    async def stop(self) -> None:
        self.relay.stop()
        for task in self._tasks:
            if task.get_name() != "outbox-relay":
                task.cancel()
        # Let the relay finish the batch it is publishing, then stop consuming (the broker waits
        # for in-flight handlers up to its graceful timeout), then close the database.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 10)
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self.broker.stop()
        await self.db.dispose()

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        await self.start()
        settle_heap()
        try:
            yield
        finally:
            await self.stop()

    # --- HTTP ---------------------------------------------------------------------------------

    def _build_api(self) -> FastAPI:
        api = FastAPI(
            title=self.spec.title,
            description=self.spec.description,
            version=API_VERSION,
            lifespan=self.lifespan,
            docs_url=None,
            redoc_url=None,
            openapi_tags=self.spec.openapi_tags or None,
            generate_unique_id_function=unique_id_function(self.spec.resource or self.spec.name),
            # Server spans come from observability.http.ServerSpans (added below): FastAPI's own
            # request telemetry cost more than a whole refused booking request. Metrics are
            # Prometheus' job here, logs are ours.
            telemetry={
                "tracing": False,
                "metrics": False,
                "logs": False,
                "operation_spans": False,
                "auto_configure": False,
            },
        )
        api.state.service = self
        for middleware in self.spec.http_middleware:
            api.add_middleware(middleware, service=self)
        api.add_middleware(RejectNulCharacters)
        # Outside the NUL check (which reads the whole body), inside metrics and tracing (a 413
        # is counted and traced like any answer).
        api.add_middleware(LimitRequestBody, max_bytes=self.settings.max_body_bytes)
        api.add_middleware(metrics.HttpMetricsMiddleware, service=self.spec.name)
        api.add_middleware(ServerSpans, untraced_paths=_UNTRACED_PATHS)
        api.state.token_verifier = self.token_verifier
        install_problem_handlers(api)
        for router in self.spec.routers:
            api.include_router(router)
        api.include_router(self._ops_router())
        assets.mount(api)
        return api

    def _ops_router(self) -> APIRouter:
        router = APIRouter(tags=["operations"])
        service = self

        @router.get("/health", summary="Liveness: the process is up")
        async def health() -> dict[str, str]:
            return {"status": "ok", "service": service.spec.name}

        @router.get("/ready", summary="Readiness: database and broker reachable")
        async def ready() -> JSONResponse:
            checks: dict[str, str] = {}
            try:
                await asyncio.wait_for(service.db.ping(), 2)
                checks["database"] = "ok"
            except Exception as exc:  # noqa: BLE001
                checks["database"] = f"unavailable: {type(exc).__name__}"
            try:
                ok = await service.broker.ping(timeout=2)
                checks["broker"] = "ok" if ok else "unavailable"
            except Exception as exc:  # noqa: BLE001
                checks["broker"] = f"unavailable: {type(exc).__name__}"
            if all(v == "ok" for v in checks.values()):
                return JSONResponse(
                    {"status": "ready", "service": service.spec.name, "checks": checks}
                )
            return problem_response(
                503, "Not ready: a dependency is unreachable.", code="not-ready", checks=checks
            )

        @router.get("/metrics", include_in_schema=False)
        async def prometheus_metrics() -> Any:
            return metrics.metrics_response()

        @router.get("/asyncapi.json", include_in_schema=False)
        async def asyncapi_json() -> PlainTextResponse:
            return PlainTextResponse(
                service.asyncapi.to_specification().to_json(), media_type="application/json"
            )

        @router.get("/asyncapi.yaml", include_in_schema=False)
        async def asyncapi_yaml() -> PlainTextResponse:
            return PlainTextResponse(
                service.asyncapi.to_specification().to_yaml(), media_type="application/yaml"
            )

        @router.get("/asyncapi", include_in_schema=False)
        async def asyncapi_page() -> HTMLResponse:
            return HTMLResponse(
                get_asyncapi_html(
                    service.asyncapi.to_specification(),
                    asyncapi_js_url=assets.ASYNCAPI_JS,
                    asyncapi_css_url=assets.ASYNCAPI_CSS,
                    try_it_out_path=None,
                )
            )

        @router.get("/docs", include_in_schema=False)
        async def docs() -> HTMLResponse:
            return assets.swagger_page(service.spec.title, "/openapi.json")

        return router
