"""What the OpenAPI document needs beyond the views' own serializers: the problem-details error
shape (as :mod:`auth.core.problems` renders it), the Bearer scheme of ``GET /auth/me`` (named and
described like the FastAPI services' ``HTTPBearer``, so the gateway's merged document has one),
request bodies that refuse unknown fields, and :func:`problems`, an operation's error responses.

Imported by :meth:`auth.accounts.apps.AccountsConfig.ready` (drf-spectacular finds extensions by
subclass registration)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from kit.openapi import operation_id
from kit.problems import PROBLEM_JSON, PROBLEM_SCHEMA


class ProblemFieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="Where the error is, e.g. `body.email`.")
    message = serializers.CharField()
    type = serializers.CharField(help_text="Machine-readable kind, e.g. `missing`.")


class ProblemSerializer(serializers.Serializer):
    """An RFC 9457 problem details object (`application/problem+json`)."""

    type = serializers.URLField(help_text="Identifies the problem kind (stable; branch on it).")
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    instance = serializers.CharField(required=False, help_text="The request path.")
    errors = ProblemFieldErrorSerializer(
        many=True, required=False, help_text="One entry per invalid field (422, 400)."
    )
    retry_after = serializers.IntegerField(
        required=False, help_text="Seconds to wait (429; also in the `Retry-After` header)."
    )


def problems(**descriptions: str) -> dict[tuple[int, str], OpenApiResponse]:
    """Error responses, e.g. ``problems(s409="E-mail address taken")``: status -> description."""
    return {
        (int(key.removeprefix("s")), PROBLEM_JSON): OpenApiResponse(ProblemSerializer, description)
        for key, description in descriptions.items()
    }


# The errors every JSON-body operation can answer before its own rules run.
BODY_PROBLEMS = problems(
    s400="The body is not valid JSON",
    s422="Invalid fields (each in `errors`)",
)


class AccessTokenScheme(OpenApiAuthenticationExtension):
    target_class = "auth.accounts.authentication.AccessTokenAuthentication"
    name = "HTTPBearer"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "Access token from POST /auth/login",
        }


class StrictBody(OpenApiSerializerExtension):
    """A ``StrictSerializer`` refuses unknown fields (422): ``additionalProperties: false``."""

    target_class = "auth.accounts.apis.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema.pop("description", None)  # StrictSerializer's docstring, about its code
        return {**schema, "additionalProperties": False}


def platform_conventions(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """drf-spectacular post-processing hook: the operation-id rule of every service
    (``login`` -> ``auth_login``, :func:`kit.operation_id`) and the platform's one ``Problem``
    schema (the serializer above documents the same shape; the merged document of the gateway
    must find the same ``Problem`` in every service)."""
    for item in (result.get("paths") or {}).values():
        for operation in item.values():
            if isinstance(operation, dict) and operation.get("operationId"):
                operation["operationId"] = operation_id("auth", operation["operationId"])
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas.pop("ProblemFieldError", None)
    return result
