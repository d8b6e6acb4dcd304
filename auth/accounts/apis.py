"""HTTP API: one class per operation, input and output serializers nested in it. Views only
translate HTTP into a service/selector call and back; the rules live in services.py."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from auth.accounts import selectors, services
from auth.accounts.authentication import AccessTokenAuthentication, IsAuthenticatedPrincipal
from kit.problems import Unauthorized
from auth.accounts.models import REGISTRABLE_ROLES
from auth.core.client_address import client_address
from auth.core.openapi import BODY_PROBLEMS, problems


class StrictSerializer(serializers.Serializer):
    """Unknown fields are errors (as in the FastAPI services), not silently ignored."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = (
            set(self.initial_data) - set(self.fields)
            if isinstance(self.initial_data, dict)
            else set()
        )
        if unknown:
            raise serializers.ValidationError(
                {
                    name: serializers.ErrorDetail("Unknown field.", code="extra_forbidden")
                    for name in sorted(unknown)
                }
            )
        return attrs


class StringField(serializers.CharField):
    """A JSON string, not anything DRF can turn into one (``1`` is not a token): the schema says
    string, and an answer that does not depend on the value (logout) must still refuse it."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class EmailStringField(StringField, serializers.EmailField):
    """An e-mail address given as a JSON string (not a number DRF would turn into one)."""


class RegexStringField(StringField, serializers.RegexField):
    """A JSON string matching a pattern."""


@extend_schema_serializer(component_name="User")
class UserOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()
    full_name = serializers.CharField()
    role = serializers.CharField()
    phone = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()


@extend_schema_serializer(component_name="TokenPair")
class TokenPairOutputSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    refresh_token = serializers.CharField()
    token_type = serializers.CharField()
    expires_in = serializers.IntegerField(help_text="Seconds until the access token expires.")
    refresh_expires_in = serializers.IntegerField()


class UserRegisterApi(APIView):
    @extend_schema_serializer(component_name="Register")
    class InputSerializer(StrictSerializer):
        email = EmailStringField(max_length=254)
        password = StringField(max_length=256, trim_whitespace=False)
        full_name = StringField(max_length=200, required=False, allow_blank=True, default="")
        role = serializers.ChoiceField(
            choices=[str(r) for r in REGISTRABLE_ROLES], default="customer"
        )
        phone = RegexStringField(
            r"^\+[1-9][0-9]{6,14}$",
            required=False,
            allow_null=True,
            default=None,
            error_messages={"invalid": "A phone number in E.164 format, e.g. +351912345678."},
        )

    OutputSerializer = UserOutputSerializer

    @extend_schema(
        operation_id="register",
        summary="Create an account",
        tags=["auth"],
        auth=[],
        request=InputSerializer,
        responses={
            201: OpenApiResponse(OutputSerializer, "The new account"),
            **BODY_PROBLEMS,
            **problems(
                s409="An account with this e-mail address already exists",
                s429="Too many registrations from this address or overall (see `Retry-After`)",
                s503="Too many registrations in progress (see `Retry-After`)",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_register(**data.validated_data, client_address=client_address(request))
        return Response(self.OutputSerializer(user).data, status=status.HTTP_201_CREATED)


class UserLoginApi(APIView):
    @extend_schema_serializer(component_name="Login")
    class InputSerializer(StrictSerializer):
        email = StringField(max_length=254)
        password = StringField(max_length=256, trim_whitespace=False)

    OutputSerializer = TokenPairOutputSerializer

    @extend_schema(
        operation_id="login",
        summary="Get an access and a refresh token",
        tags=["auth"],
        auth=[],
        request=InputSerializer,
        responses={
            200: OpenApiResponse(OutputSerializer, "A new token pair"),
            **BODY_PROBLEMS,
            **problems(
                s401="Wrong e-mail address or password",
                s429="Too many failed logins for this account or address (see `Retry-After`)",
                s503="Too many logins in progress (see `Retry-After`)",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        pair = services.user_login(**data.validated_data, client_address=client_address(request))
        return Response(self.OutputSerializer(pair).data)


class TokenRefreshApi(APIView):
    @extend_schema_serializer(component_name="Refresh")
    class InputSerializer(StrictSerializer):
        refresh_token = StringField(max_length=4096)

    OutputSerializer = TokenPairOutputSerializer

    @extend_schema(
        operation_id="refresh",
        summary="Exchange a refresh token for a new pair (single use)",
        tags=["auth"],
        auth=[],
        request=InputSerializer,
        responses={
            200: OpenApiResponse(OutputSerializer, "A new token pair"),
            **BODY_PROBLEMS,
            **problems(
                s401="The refresh token is invalid, expired or already used (a reuse "
                "revokes its whole session)"
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        pair = services.tokens_refresh(**data.validated_data)
        return Response(self.OutputSerializer(pair).data)


class LogoutApi(APIView):
    @extend_schema_serializer(component_name="Logout")
    class InputSerializer(StrictSerializer):
        refresh_token = StringField(max_length=4096)

    @extend_schema(
        operation_id="logout",
        summary="End a session: revoke a refresh token's whole family",
        description="Every refresh token of the rotation family of the given one stops working. "
        "Idempotent: an unknown, expired or already revoked token is also 204.",
        tags=["auth"],
        auth=[],
        request=InputSerializer,
        responses={
            204: OpenApiResponse(description="Revoked (or nothing to revoke)"),
            **BODY_PROBLEMS,
        },
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.session_logout(**data.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserMeApi(APIView):
    authentication_classes = [AccessTokenAuthentication]
    permission_classes = [IsAuthenticatedPrincipal]

    OutputSerializer = UserOutputSerializer

    @extend_schema(
        operation_id="me",
        summary="The current user",
        tags=["auth"],
        responses={
            200: OpenApiResponse(OutputSerializer, "The account of the access token"),
            **problems(s401="Missing or invalid access token"),
        },
    )
    def get(self, request: Request) -> Response:
        user = selectors.user_get(user_id=request.user.user_id)
        if user is None:  # a valid token of an account that no longer exists
            raise Unauthorized("The account of this access token no longer exists.")
        return Response(self.OutputSerializer(user).data)


_JWK = inline_serializer(
    "Jwk",
    {
        "kty": serializers.CharField(help_text="`RSA` or `OKP`."),
        "kid": serializers.CharField(
            help_text="Matches the `kid` header of the tokens it verifies."
        ),
        "alg": serializers.CharField(help_text="`RS256` or `EdDSA`."),
        "use": serializers.CharField(help_text="Always `sig`."),
        "n": serializers.CharField(required=False, help_text="RSA modulus (base64url)."),
        "e": serializers.CharField(required=False, help_text="RSA exponent (base64url)."),
        "crv": serializers.CharField(required=False, help_text="OKP curve (`Ed25519`)."),
        "x": serializers.CharField(required=False, help_text="OKP public key (base64url)."),
    },
    many=True,
)


class JwksApi(APIView):
    OutputSerializer = inline_serializer("Jwks", {"keys": _JWK})

    @extend_schema(
        operation_id="jwks",
        summary="The public keys that verify access tokens (RFC 7517 JWKS)",
        tags=["auth"],
        auth=[],
        responses={200: OpenApiResponse(OutputSerializer, "The key set")},
    )
    def get(self, request: Request) -> Response:
        return Response(selectors.jwks_get(), headers={"Cache-Control": "public, max-age=300"})
