"""DRF authentication with an access token, verified exactly as every other service does it
(the kit's TokenVerifier on this service's JWKS)."""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions

from kit.security import InvalidToken, Principal
from auth.accounts import tokens


class AccessTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Any) -> tuple[Principal, str] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None  # -> NotAuthenticated (401) from IsAuthenticated
        try:
            principal = tokens.verify_access(token.strip())
        except InvalidToken as exc:
            raise exceptions.AuthenticationFailed(f"Invalid access token: {exc}.") from exc
        return principal, token

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer error="invalid_token"'


class IsAuthenticatedPrincipal:
    """Permission: a verified access token was presented."""

    def has_permission(self, request: Any, view: Any) -> bool:
        return isinstance(request.user, Principal)

    def has_object_permission(self, request: Any, view: Any, obj: Any) -> bool:
        return True
