"""RFC 9457 problem details: one error shape for every service and the gateway.

Services raise their domain errors (:class:`kit.errors.DomainError` subclasses, which carry their
own status and code); kit-level code raises a :class:`Problem`, the same thing made on the spot.
:func:`install_problem_handlers` turns either, FastAPI's validation errors, unknown routes and
unexpected crashes into ``application/problem+json`` responses.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kit.errors import DomainError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://eventbooking.dev/problems/"

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class Problem(DomainError):
    """An error a client can act on, its status, code and fields given where it is raised (a
    service's own rules are :class:`~kit.errors.DomainError` subclasses instead)."""

    status: int = 400
    code: str = "bad-request"

    def __init__(
        self,
        detail: str = "",
        *,
        code: str | None = None,
        status: int | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.extra = extra  # (``field`` too: a Problem lists its fields in ``errors``)
        if code:
            self.code = code
        if status:
            self.status = status
        self.errors = errors
        self.headers = headers or {}


class BadRequest(Problem):
    status, code = 400, "bad-request"


class Unauthorized(Problem):
    status, code = 401, "unauthorized"

    def __init__(self, detail: str = "Missing or invalid access token.", **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        super().__init__(detail, **kw)


class Forbidden(Problem):
    status, code = 403, "forbidden"


class NotFound(Problem):
    status, code = 404, "not-found"


class Conflict(Problem):
    status, code = 409, "conflict"


class Unprocessable(Problem):
    status, code = 422, "validation-error"


class TooManyRequests(Problem):
    status, code = 429, "too-many-requests"


def problem_body(
    status: int,
    detail: str = "",
    *,
    code: str | None = None,
    title: str | None = None,
    instance: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": TYPE_BASE + (code or _TITLES.get(status, "error").lower().replace(" ", "-")),
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail or title or _TITLES.get(status, "Error"),
    }
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    return body


def problem_response(
    status: int, detail: str = "", *, headers: dict[str, str] | None = None, **kw: Any
) -> JSONResponse:
    return JSONResponse(
        problem_body(status, detail, **kw),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_JSON,
    )


def field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Each bad field as ``{"field": "body.capacity", "message": ..., "type": ...}``."""
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        out.append({"field": ".".join(loc), "message": err.get("msg", ""), "type": err.get("type")})
    return out


def problem_body_of(error: DomainError, instance: str | None = None) -> dict[str, Any]:
    """The problem details of a raised domain error (or :class:`Problem`)."""
    return problem_body(
        error.status,
        error.detail,
        code=error.code,
        title=error.title,
        errors=error.errors,
        instance=instance,
        **error.extra,
    )


def render_problem(error: DomainError, instance: str) -> JSONResponse:
    """The response for a raised domain error or :class:`Problem` (what the installed handler
    answers)."""
    return JSONResponse(
        problem_body_of(error, instance),
        status_code=error.status,
        headers=dict(error.headers) or None,
        media_type=PROBLEM_JSON,
    )


async def _on_problem(request: Request, exc: DomainError) -> JSONResponse:
    return render_problem(exc, request.url.path)


async def _on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = field_errors(exc)
    if any(e["type"] in ("json_invalid", "json_type") for e in errors):
        return problem_response(
            400,
            "The request body is not valid JSON.",
            code="malformed-json",
            errors=errors,
            instance=request.url.path,
        )
    return problem_response(
        422,
        "The request has invalid fields.",
        code="validation-error",
        errors=errors,
        instance=request.url.path,
    )


async def _on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail if isinstance(exc.detail, str) else ""
    if exc.status_code == 404 and detail in ("", "Not Found"):
        detail = f"No route {request.method} {request.url.path}."
    return problem_response(
        exc.status_code, detail, headers=getattr(exc, "headers", None), instance=request.url.path
    )


async def _on_crash(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(500, "An unexpected error occurred.", instance=request.url.path)


class RejectNulCharacters:
    """ASGI middleware: a request whose JSON body or query carries a NUL character (``\\u0000``,
    ``%00``) is a 422 naming the field, before any route runs. PostgreSQL cannot store NUL in
    text, so such input used to reach the database and come back as a 500 (DRF's ``CharField``
    refuses it the same way in auth). The check costs a byte search unless a NUL is there."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        bad = _nul_fields_in_query(scope.get("query_string", b""))
        if not bad:  # (small: LimitRequestBody, outside this, caps the body)
            body, receive = await buffer_body(receive)
            bad = _nul_fields_in_body(body)
        if bad:
            response = problem_response(
                422,
                "Text must not contain NUL characters.",
                code="validation-error",
                instance=scope.get("path"),
                errors=[
                    {"field": f, "message": "NUL characters are not allowed.", "type": "string_nul"}
                    for f in bad
                ],
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class BodyTooLarge(Exception):  # noqa: N818
    """The request body is over the limit given to :func:`buffer_body`."""


async def buffer_body(receive: Any, limit: int | None = None) -> tuple[bytes, Any]:
    """Read the whole request body; returns it and a ``receive`` that replays it to the app
    below (then goes on with the real one, e.g. for the disconnect). With ``limit``, raises
    :class:`BodyTooLarge` as soon as more than ``limit`` bytes arrived: the rest is never read."""
    messages = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        size += len(message.get("body", b""))
        if limit is not None and size > limit:
            raise BodyTooLarge(size)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    replay = iter(messages)

    async def replayed() -> Any:
        return next(replay, None) or await receive()

    return b"".join(m.get("body", b"") for m in messages), replayed


class LimitRequestBody:
    """ASGI middleware: a request body over ``max_bytes`` is a 413 problem (``body-too-large``)
    before any route runs, whether its Content-Length says so or it streams in chunks past the
    cap; no more than the cap (plus the piece that crossed it) is read. The gateway has the
    same cap, but a service must not depend on every caller coming through the gateway."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        too_large = declared is not None and declared.isdigit() and int(declared) > self.max_bytes
        if not too_large:
            try:
                _, receive = await buffer_body(receive, self.max_bytes)
            except BodyTooLarge:
                too_large = True
        if too_large:
            # Connection: close, as the unread rest of the body cannot be skipped cheaply.
            response = problem_response(
                413,
                f"The body is larger than {self.max_bytes} bytes.",
                code="body-too-large",
                instance=scope.get("path"),
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _nul_fields_in_query(query: bytes) -> list[str]:
    if b"%00" not in query:
        return []
    from urllib.parse import parse_qsl

    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    return [f"query.{k}" for k, v in pairs if "\x00" in k or "\x00" in v]


def _nul_fields_in_body(body: bytes) -> list[str]:
    if b"\\u0000" not in body:
        return []
    import json

    try:
        data = json.loads(body)
    except ValueError:
        return []  # not JSON: the route's own parsing answers

    found: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, str) and "\x00" in node:
            found.append(path)
        elif isinstance(node, dict):
            for k, v in node.items():
                if "\x00" in k:
                    found.append(f"{path}.{k!r}")
                else:
                    walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}.{i}")

    walk(data, "body")
    return found


def install_problem_handlers(app: FastAPI) -> None:
    # One handler for every service's domain errors and the kit's own Problems.
    app.add_exception_handler(DomainError, _on_problem)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _on_http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _on_crash)
    _document_problems(app)


# The shape :func:`problem_body` renders, for the OpenAPI document.
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details (`application/problem+json`).",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "Identifies the problem kind (branch on it)."},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The request path."},
        "errors": {
            "type": "array",
            "description": "One entry per invalid field (422, 400).",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "type": {"type": ["string", "null"]},
                },
            },
        },
        "retry_after": {
            "type": "integer",
            "description": "Seconds to wait (429, 503; also in the `Retry-After` header).",
        },
    },
    "additionalProperties": True,
}


def _document_problems(app: FastAPI) -> None:
    """Make the app's OpenAPI document say what the handlers above really answer: every error
    response is ``application/problem+json`` (FastAPI documents its own ``HTTPValidationError``
    as ``application/json``), a body or query that cannot be parsed is a 400, and an operation
    behind a bearer token can answer 401."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = PROBLEM_SCHEMA
        # FastAPI's own 422 shapes: never answered (the 422 below is a Problem).
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                responses = operation["responses"]
                if operation.get("requestBody") or operation.get("parameters"):
                    responses.setdefault(
                        "400", {"description": "Malformed JSON body or query value"}
                    )
                if operation.get("security"):
                    responses.setdefault("401", {"description": "Missing or invalid access token"})
                for status, response in responses.items():
                    if status[:1] in ("4", "5"):
                        response["content"] = problem
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
