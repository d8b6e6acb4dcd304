"""Verifying access tokens issued by the auth service, with its public JWKS only.

* Algorithms are an allow-list of asymmetric ones (RS256, EdDSA); ``none`` and every HMAC
  algorithm are refused, so a public key can never be used as an HMAC secret.
* The key is chosen by ``kid``; an unknown ``kid`` triggers one JWKS refresh (rate-limited), so
  key rotation at the auth service is picked up without a restart.
* ``iss``, ``aud``, ``exp``, ``iat``, ``sub``, ``jti`` are required; ``token_type`` must be
  ``access`` (a refresh token never works as an access token).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import aiohttp
import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kit.problems import Forbidden, Unauthorized

ALLOWED_ALGORITHMS = ("RS256", "EdDSA")
Role = Literal["customer", "organizer", "admin"]


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: uuid.UUID
    role: Role
    claims: dict[str, Any]

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class InvalidToken(Exception):  # noqa: N818
    pass


class TokenVerifier:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        jwks: dict[str, Any] | None = None,
        refresh_interval: float = 30.0,
        timeout: float = 3.0,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.jwks_url = jwks_url
        self.refresh_interval = refresh_interval
        self.timeout = timeout
        self._keys: dict[str, jwt.PyJWK] = {}
        # Verified tokens until they expire: a hot path pays for RSA verification once per token,
        # not once per request. Cleared whenever the key set changes (rotation, revocation).
        self._verified: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self.cache_size = 10_000
        self._last_fetch = 0.0
        self._lock = asyncio.Lock()
        if jwks is not None:
            self._load(jwks)
            self._static = True
        else:
            self._static = False

    def _load(self, jwks: dict[str, Any]) -> None:
        keys: dict[str, jwt.PyJWK] = {}
        for data in jwks.get("keys", []):
            try:
                key = jwt.PyJWK(data)
            except jwt.PyJWTError:
                continue
            if data.get("kid") and key.algorithm_name in ALLOWED_ALGORITHMS:
                keys[data["kid"]] = key
        if keys.keys() != self._keys.keys():
            self._verified.clear()
        self._keys = keys

    async def _refresh(self) -> None:
        if self._static or not self.jwks_url:
            return
        async with self._lock:
            if time.monotonic() - self._last_fetch < self.refresh_interval and self._keys:
                return
            self._last_fetch = time.monotonic()
            try:
                timeout = aiohttp.ClientTimeout(total=self.timeout)
                async with aiohttp.ClientSession(timeout=timeout) as session:
                    async with session.get(self.jwks_url) as resp:
                        resp.raise_for_status()
                        self._load(json.loads(await resp.read()))
            except (aiohttp.ClientError, TimeoutError, ValueError):
                # Keep the keys we had; an unknown kid then stays unknown (401).
                return

    async def key_for(self, kid: str) -> jwt.PyJWK:
        if kid not in self._keys:
            await self._refresh()
        try:
            return self._keys[kid]
        except KeyError:
            raise InvalidToken("unknown signing key") from None

    async def verify(self, token: str) -> Principal:
        cached = self._verified.get(token)
        if cached is not None:
            if cached[0] > time.time():
                return cached[1]
            self._verified.pop(token, None)
        principal = await self._verify(token)
        self._verified[token] = (float(principal.claims["exp"]), principal)
        if len(self._verified) > self.cache_size:
            self._verified.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> Principal:
        header = _unverified_header(token)
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALLOWED_ALGORITHMS or not isinstance(kid, str):
            raise InvalidToken("unacceptable token header")
        key = await self.key_for(kid)
        if key.algorithm_name != alg:
            raise InvalidToken("algorithm does not match the key")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
                leeway=5,
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        if claims.get("token_type") != "access":
            raise InvalidToken("not an access token")
        role = claims.get("role")
        if role not in ("customer", "organizer", "admin"):
            raise InvalidToken("unknown role")
        try:
            user_id = uuid.UUID(str(claims["sub"]))
        except ValueError as exc:
            raise InvalidToken("bad subject") from exc
        return Principal(user_id=user_id, role=role, claims=claims)


def _unverified_header(token: str) -> dict[str, Any]:
    """The token's JOSE header, read only to pick the key and algorithm: ``jwt.decode`` then
    parses and checks the whole token strictly (and refuses an ``alg`` other than the one picked
    here). Cheaper than ``jwt.get_unverified_header``, which parses the token a second time:
    measured with py-spy, that parse was a third of a first-seen token's verification."""
    segment = token.partition(".")[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, TypeError, binascii.Error, RecursionError) as exc:
        raise InvalidToken("malformed token") from exc
    if not isinstance(header, dict):
        raise InvalidToken("malformed token")
    return header


_bearer = HTTPBearer(auto_error=False, description="Access token from POST /auth/login")


async def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("An access token is required (Authorization: Bearer <token>).")
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        principal = await verifier.verify(credentials.credentials)
    except InvalidToken as exc:
        raise Unauthorized(f"Invalid access token: {exc}.") from exc
    request.state.principal = principal
    return principal


CurrentUser = Annotated[Principal, Depends(current_user)]


def require_role(*roles: Role):  # noqa: ANN201
    async def dependency(user: CurrentUser) -> Principal:
        if user.role not in roles:
            raise Forbidden(f"This needs one of the roles: {', '.join(roles)}.")
        return user

    return Depends(dependency)
