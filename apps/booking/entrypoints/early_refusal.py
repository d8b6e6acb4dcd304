"""The on-sale rush's fast lane: ``POST /booking/create`` attempts that this replica already
knows must be refused (the event is sold out or cancelled, as seen within the availability
cache's window) are answered below FastAPI's routing, dependency solving and response machinery.

During a flash sale nine attempts in ten are such refusals. Measured with ``py-spy`` in
``bench/flash_sale.py``, FastAPI's path spent ~80 % of such an attempt's CPU outside the route
function (routing, dependency solving, body validation, building the response); this lane runs
the same checks in the same order and answers the same problem:

1. the bearer token is verified by the service's :class:`~kit.security.TokenVerifier`
   (a bad or missing token goes on to the route, which answers 401);
2. the body is parsed and validated with the route's own model (``BookingCreate``; a body the
   model refuses goes on to the route, which answers 400/422 as usual);
3. :func:`apps.booking.handlers.refuse_from_memory` decides, as the route does; the refusal is
   counted by the route's own ``count_refusal`` and rendered by the kit's ``render_problem``,
   as the kit's problem handler renders it for the route.

Anything else (an ``Idempotency-Key``, which must be decided on a fresh read and stored, an event
with seats left or not seen yet, a content type other than JSON) goes on to the route unchanged.
It sits inside the tracing, metrics and NUL-check middleware, so the request still has its span,
its metrics sample (under the route's template) and the NUL check.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apps.booking import handlers
from apps.booking.deps import BookingDeps
from apps.booking.domain import BookingError
from apps.booking.entrypoints.http import count_refusal, create_booking, router
from apps.booking.schemas import BookingCreate
from kit.problems import buffer_body, render_problem
from kit.security import InvalidToken
from observability import set_span_attributes

PATH = "/booking/create"


class EarlyRefusal:
    """ASGI middleware of the booking service (see the module's docstring)."""

    def __init__(self, app: ASGIApp, service: Any) -> None:
        self.app = app
        self.service = service
        self.route = the_route()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        token, authorization = None, None
        for name, value in scope["headers"]:
            if name == b"authorization" and authorization is None:  # the first, as Starlette
                authorization = value
                scheme, _, credentials = value.partition(b" ")
                if scheme.lower() == b"bearer" and credentials:
                    token = credentials.decode("latin-1")
            elif name == b"idempotency-key":
                token = None
                break
            elif name == b"content-type" and not value.lower().startswith(b"application/json"):
                token = None
                break
        else:
            if token is not None:
                body, receive = await buffer_body(receive)
                if await self._refused(scope, send, token, body):
                    return
        await self.app(scope, receive, send)

    async def _refused(self, scope: Scope, send: Send, token: str, body: bytes) -> bool:
        """Answer the refusal and say True, or say False (the route decides)."""
        service = self.service
        deps = BookingDeps.of(service)
        try:
            user = await service.token_verifier.verify(token)
            request = BookingCreate.model_validate(json.loads(body))
        except (InvalidToken, ValidationError, ValueError, RecursionError):
            return False
        try:
            handlers.refuse_from_memory(
                deps.availability,
                event_id=request.event_id,
                quantity=request.total,
                max_per_booking=deps.settings.max_tickets_per_booking,
            )
        except BookingError as exc:
            set_span_attributes(**{"event.id": request.event_id, "user.id": user.user_id})
            scope["route"] = self.route  # the metrics' and the span's route, as after routing
            count_refusal(exc)
            response = render_problem(exc, PATH)
            await response(scope, _no_more_body, send)
            return True
        return False


def the_route() -> APIRoute:
    """The route this lane stands in for, as routing puts it in ``scope["route"]``: taken from
    the booking router itself (the app's own ``routes`` list only wraps included routers)."""
    return next(
        r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is create_booking
    )


async def _no_more_body() -> Message:
    return {"type": "http.disconnect"}
