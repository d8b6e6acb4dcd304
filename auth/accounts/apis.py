"""HTTP API: one class per operation, input and output serializers nested in it. Views only
translate HTTP into a service/selector call and back; the rules live in services.py."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from auth.accounts import selectors, services
from auth.accounts.authentication import AccessTokenAuthentication, IsAuthenticatedPrincipal
from apps.kit.problems import Unauthorized
from auth.accounts.models import REGISTRABLE_ROLES
from auth.core.client_address import client_address


class StrictSerializer(serializers.Serializer):
    """Unknown fields are errors (as in the FastAPI services), not silently ignored."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = set(self.initial_data) - set(self.fields) if isinstance(self.initial_data, dict) else set()
        if unknown:
            raise serializers.ValidationError(
                {name: serializers.ErrorDetail("Unknown field.", code="extra_forbidden")
                 for name in sorted(unknown)}
            )
        return attrs


class UserOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()
    full_name = serializers.CharField()
    role = serializers.CharField()
    phone = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()


class TokenPairOutputSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    refresh_token = serializers.CharField()
    token_type = serializers.CharField()
    expires_in = serializers.IntegerField(help_text="Seconds until the access token expires.")
    refresh_expires_in = serializers.IntegerField()


class UserRegisterApi(APIView):
    class InputSerializer(StrictSerializer):
        email = serializers.EmailField(max_length=254)
        password = serializers.CharField(max_length=256, trim_whitespace=False)
        full_name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
        role = serializers.ChoiceField(choices=[str(r) for r in REGISTRABLE_ROLES], default="customer")
        phone = serializers.RegexField(
            r"^\+[1-9][0-9]{6,14}$", required=False, allow_null=True, default=None,
            error_messages={"invalid": "A phone number in E.164 format, e.g. +351912345678."},
        )

    OutputSerializer = UserOutputSerializer

    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_create(**data.validated_data)
        return Response(self.OutputSerializer(user).data, status=status.HTTP_201_CREATED)


class UserLoginApi(APIView):
    class InputSerializer(StrictSerializer):
        email = serializers.CharField(max_length=254)
        password = serializers.CharField(max_length=256, trim_whitespace=False)

    OutputSerializer = TokenPairOutputSerializer

    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        pair = services.user_login(**data.validated_data, client_address=client_address(request))
        return Response(self.OutputSerializer(pair).data)


class TokenRefreshApi(APIView):
    class InputSerializer(StrictSerializer):
        refresh_token = serializers.CharField(max_length=4096)

    OutputSerializer = TokenPairOutputSerializer

    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        pair = services.tokens_refresh(**data.validated_data)
        return Response(self.OutputSerializer(pair).data)


class UserMeApi(APIView):
    authentication_classes = [AccessTokenAuthentication]
    permission_classes = [IsAuthenticatedPrincipal]

    OutputSerializer = UserOutputSerializer

    def get(self, request: Request) -> Response:
        user = selectors.user_get(user_id=request.user.user_id)
        if user is None:  # a valid token of an account that no longer exists
            raise Unauthorized("The account of this access token no longer exists.")
        return Response(self.OutputSerializer(user).data)


class JwksApi(APIView):
    def get(self, request: Request) -> Response:
        return Response(
            selectors.jwks_get(), headers={"Cache-Control": "public, max-age=300"}
        )
