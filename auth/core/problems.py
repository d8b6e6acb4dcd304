"""RFC 9457 problem details for Django/DRF, in exactly the shape of :mod:`kit.problems`
(``type``/``title``/``status``/``detail``/``instance``/``errors[{field, message, type}]``), so a
client cannot tell the auth service's errors from any other service's.

* DRF's exception handler (``REST_FRAMEWORK["EXCEPTION_HANDLER"]``) covers views;
* Django's ``handler400/403/404/500`` cover everything else (unknown routes, crashes).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

from kit.problems import PROBLEM_JSON, Problem, problem_body, problem_body_of

log = logging.getLogger(__name__)

# DRF's error codes, named like the FastAPI services' (pydantic) ones where they mean the same.
_CODES = {"required": "missing", "null": "missing", "blank": "string_too_short"}


def _field_errors(detail: Any, prefix: str = "body") -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if isinstance(detail, dict):
        for name, sub in detail.items():
            field = prefix if name in ("non_field_errors", "__all__") else f"{prefix}.{name}"
            out += _field_errors(sub, field)
    elif isinstance(detail, list):
        for item in detail:
            out += _field_errors(item, prefix)
    else:
        code = getattr(detail, "code", None) or "invalid"
        out.append({"field": prefix, "message": str(detail), "type": _CODES.get(code, code)})
    return out


def _django_validation_errors(exc: DjangoValidationError) -> list[dict[str, Any]]:
    fields = exc.error_dict.items() if hasattr(exc, "error_dict") else [("__all__", exc.error_list)]
    return [
        {
            "field": "body" if name == "__all__" else f"body.{name}",
            "message": message,
            "type": error.code or "invalid",
        }
        for name, errors in fields
        for error in errors
        for message in error.messages
    ]


def problem(
    status: int, detail: str = "", *, headers: dict[str, str] | None = None, **kw: Any
) -> tuple[dict[str, Any], dict[str, str]]:
    return problem_body(status, detail, **kw), headers or {}


def _describe(exc: Exception, path: str) -> tuple[dict[str, Any], dict[str, str]] | None:
    if isinstance(exc, Problem):
        return problem_body_of(exc, path), dict(exc.headers)
    if isinstance(exc, drf.ValidationError | DjangoValidationError):
        errors = (
            _field_errors(exc.detail)
            if isinstance(exc, drf.ValidationError)
            else _django_validation_errors(exc)
        )
        return problem(
            422,
            "The request has invalid fields.",
            code="validation-error",
            errors=errors,
            instance=path,
        )
    if isinstance(exc, drf.ParseError):
        return problem(
            400,
            "The request body is not valid JSON.",
            code="malformed-json",
            errors=[{"field": "body", "message": str(exc.detail), "type": "json_invalid"}],
            instance=path,
        )
    if isinstance(exc, RequestDataTooBig):
        return problem(413, "The request body is too large.", instance=path)
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        return problem(
            401,
            str(exc.detail),
            code="unauthorized",
            instance=path,
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    if isinstance(exc, drf.Throttled):
        wait = int(exc.wait or 1)
        return problem(429, str(exc.detail), instance=path, headers={"Retry-After": str(wait)})
    if isinstance(exc, Http404):
        return problem(404, "Not found.", instance=path)
    if isinstance(exc, PermissionDenied):
        return problem(403, "Not allowed.", instance=path)
    if isinstance(exc, drf.MethodNotAllowed):
        return problem(405, str(exc.detail), instance=path)
    if isinstance(exc, drf.APIException):
        return problem(exc.status_code, str(exc.detail), instance=path)
    return None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    request = context.get("request")
    path = request.path if request is not None else ""
    described = _describe(exc, path)
    if described is None:
        return None  # a bug: Django's handler500 answers (and it is logged there)
    body, headers = described
    return Response(body, status=body["status"], headers=headers, content_type=PROBLEM_JSON)


def _json(request: HttpRequest, status: int, detail: str, **kw: Any) -> JsonResponse:
    return JsonResponse(
        problem_body(status, detail, instance=request.path, **kw),
        status=status,
        content_type=PROBLEM_JSON,
    )


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    if isinstance(exception, RequestDataTooBig):
        return _json(request, 413, "The request body is too large.")
    return _json(request, 400, "Bad request.")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _json(request, 403, "Not allowed.")


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _json(request, 404, f"No route {request.method} {request.path}.")


def server_error(request: HttpRequest) -> JsonResponse:
    return _json(request, 500, "An unexpected error occurred.")
