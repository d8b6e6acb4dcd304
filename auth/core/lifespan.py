"""The ASGI application of the auth service: Django for HTTP, plus an ASGI lifespan (which
Django lacks) that prepares the database (create, migrate, admin) before the first request and
runs the outbox relay in the same event loop when ``OUTBOX_RELAY`` is true (the default, as in
every other service)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)

Scope = dict[str, Any]


class AuthApplication:
    def __init__(self, django_app: Any, *, outbox_relay: bool) -> None:
        self.django_app = django_app
        self.outbox_relay = outbox_relay
        self.relay: Any = None  # auth.relay.AuthRelay while running
        self.lanes: Any = None  # auth.core.admission.Lanes, made at the first request

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            from django.conf import settings

            from auth.core.admission import Lanes
            from auth.core.body_limit import call_with_body_limit

            if self.lanes is None:
                self.lanes = Lanes(
                    {
                        "/auth/register": settings.REGISTER_CONCURRENCY,
                        "/auth/login": settings.LOGIN_CONCURRENCY,
                    },
                    settings.ADMISSION_WAIT_SECONDS,
                )

            async def django(scope: Scope, receive: Any, send: Any) -> None:
                await call_with_body_limit(
                    self.django_app, scope, receive, send, settings.DATA_UPLOAD_MAX_MEMORY_SIZE
                )

            await self.lanes.call(django, scope, receive, send)
        else:
            await self.django_app(scope, receive, send)

    async def startup(self) -> None:
        from auth.core import startup

        await asyncio.to_thread(startup.prepare)
        if self.outbox_relay:
            from auth.relay import AuthRelay

            relay = AuthRelay()
            await relay.start()
            self.relay = relay
        RUNNING["app"] = self

    async def shutdown(self) -> None:
        RUNNING.pop("app", None)
        if self.relay is not None:
            await self.relay.stop()
            self.relay = None

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("auth start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.shutdown()
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return


# The application serving in this process (for readiness: its relay's broker connection).
RUNNING: dict[str, AuthApplication] = {}
