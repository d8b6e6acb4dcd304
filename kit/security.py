"""Verifying access tokens issued by the auth service, with its public JWKS only.

* Algorithms are an allow-list of asymmetric ones (RS256, EdDSA); ``none`` and every HMAC
  algorithm are refused, so a public key can never be used as an HMAC secret.
* The key is chosen by ``kid``; an unknown ``kid`` triggers one JWKS refresh (rate-limited), so
  key rotation at the auth service is picked up without a restart; the JWKS is fetched again
  once its ``Cache-Control: max-age`` has passed, so a withdrawn key stops verifying too.
* ``iss``, ``aud``, ``exp``, ``iat``, ``sub``, ``jti`` are required; ``token_type`` must be
  ``access`` (a refresh token never works as an access token).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

import aiohttp
import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kit.problems import Forbidden, Unauthorized

log = logging.getLogger(__name__)

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


class KeySettings(Protocol):
    """Where settings (a service's, the gateway's) say the auth service's public keys are."""

    @property
    def jwt_issuer(self) -> str: ...
    @property
    def jwt_audience(self) -> str: ...
    @property
    def jwks_url(self) -> str | None: ...
    @property
    def jwt_jwks(self) -> str | None: ...


class TokenVerifier:
    """Verifies access tokens with the auth service's JWKS, fetched from ``jwks_url`` (or given
    inline as ``jwks``, used as is: tests, the embedded mode).

    The fetched key set is kept for the ``max-age`` of its ``Cache-Control`` header (``jwks_ttl_
    default`` without one), bounded to [``jwks_ttl_min``, ``jwks_ttl_max``] so neither a
    ``max-age=0`` nor a year can be imposed; the first request after that fetches it again, so a
    key the auth service withdrew stops verifying within minutes. An unknown ``kid`` fetches at
    once (a rotation), at most every ``refresh_interval``. If a fetch fails, the last good keys
    are kept ``jwks_stale_seconds`` past their max-age (auth may just be restarting), with a
    retry every ``retry_seconds``; after that they are dropped (every token is then 401) rather
    than trusted forever.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        jwks: dict[str, Any] | None = None,
        refresh_interval: float = 30.0,
        timeout: float = 3.0,
        jwks_ttl_default: float = 300.0,
        jwks_ttl_min: float = 10.0,
        jwks_ttl_max: float = 900.0,
        jwks_stale_seconds: float = 3600.0,
        retry_seconds: float = 5.0,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.jwks_url = jwks_url
        self.refresh_interval = refresh_interval
        self.timeout = timeout
        self.jwks_ttl_default = jwks_ttl_default
        self.jwks_ttl_min = jwks_ttl_min
        self.jwks_ttl_max = jwks_ttl_max
        self.jwks_stale_seconds = jwks_stale_seconds
        self.retry_seconds = retry_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        # Verified tokens until they expire: a hot path pays for RSA verification once per token,
        # not once per request. Cleared whenever the key set changes (rotation, revocation).
        self._verified: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self.cache_size = 10_000
        # Deadlines on the monotonic clock: keys used without a fetch until _fresh_until, kept
        # while fetches fail until _stale_until; no fetch before _next_attempt after a failure.
        self._fresh_until = 0.0
        self._stale_until = 0.0
        self._next_attempt = 0.0
        self._last_fetch = 0.0
        self._lock = asyncio.Lock()
        self._static = jwks is not None or not jwks_url
        if jwks is not None:
            self._load(jwks)

    @classmethod
    def from_settings(cls, settings: KeySettings) -> TokenVerifier:
        """The verifier of ``settings``' issuer and audience, with the key set given inline in
        ``jwt_jwks`` if set, else fetched from ``jwks_url``."""
        return cls(
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            jwks_url=settings.jwks_url,
            jwks=json.loads(settings.jwt_jwks) if settings.jwt_jwks else None,
        )

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

    def _stale(self) -> bool:
        """Whether the fetched keys are past their max-age (and a fetch may be tried now)."""
        if self._static:
            return False
        now = time.monotonic()
        return now >= self._fresh_until and now >= self._next_attempt

    async def _refresh(self, *, unknown_kid: bool = False) -> None:
        if self._static:
            return
        async with self._lock:  # one fetch at a time; those who waited see its result
            now = time.monotonic()
            if unknown_kid:
                if self._keys and now - self._last_fetch < self.refresh_interval:
                    return
            elif not self._stale():
                return
            self._last_fetch = now
            try:
                timeout = aiohttp.ClientTimeout(total=self.timeout)
                async with aiohttp.ClientSession(timeout=timeout) as session:
                    async with session.get(self.jwks_url) as resp:  # type: ignore[arg-type]
                        resp.raise_for_status()
                        document = json.loads(await resp.read())
                        ttl = jwks_max_age(resp.headers.get("Cache-Control"))
                if not isinstance(document, dict):
                    raise ValueError("the JWKS is not a JSON object")
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                self._fetch_failed(now, exc)
                return
            self._load(document)
            ttl = self.jwks_ttl_default if ttl is None else ttl
            ttl = min(max(ttl, self.jwks_ttl_min), self.jwks_ttl_max)
            self._fresh_until = now + ttl
            self._stale_until = self._fresh_until + self.jwks_stale_seconds
            self._next_attempt = 0.0

    def _fetch_failed(self, now: float, exc: BaseException) -> None:
        self._next_attempt = now + self.retry_seconds
        if self._keys and now >= self._stale_until:
            log.error(
                "JWKS fetch from %s failed (%r) and the last good keys are %.0f s past their "
                "max-age: dropped, tokens are refused until a fetch succeeds",
                self.jwks_url,
                exc,
                now - self._fresh_until,
            )
            self._load({"keys": []})
        elif self._keys:
            log.warning(
                "JWKS fetch from %s failed (%r); keeping the last good keys for at most %.0f s",
                self.jwks_url,
                exc,
                self._stale_until - now,
            )
        else:
            log.warning("JWKS fetch from %s failed (%r); no keys yet", self.jwks_url, exc)

    async def key_for(self, kid: str) -> jwt.PyJWK:
        if kid not in self._keys:
            await self._refresh(unknown_kid=True)
        try:
            return self._keys[kid]
        except KeyError:
            raise InvalidToken("unknown signing key") from None

    async def verify(self, token: str) -> Principal:
        if self._stale():  # before the cache: a token of a withdrawn key must not outlive it
            await self._refresh()
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
        claims = decode_claims(
            token, key.key, alg, audience=self.audience, issuer=self.issuer, token_type="access"
        )
        role = claims.get("role")
        if role not in ("customer", "organizer", "admin"):
            raise InvalidToken("unknown role")
        try:
            user_id = uuid.UUID(str(claims["sub"]))
        except ValueError as exc:
            raise InvalidToken("bad subject") from exc
        return Principal(user_id=user_id, role=role, claims=claims)


_NOT_A = {"access": "not an access token", "refresh": "not a refresh token"}


def decode_claims(
    token: str,
    key: Any,
    alg: str,
    *,
    audience: str,
    issuer: str,
    token_type: Literal["access", "refresh"],
) -> dict[str, Any]:
    """The claims of a token signed with ``key`` by ``alg`` (the caller has checked its header),
    or :class:`InvalidToken`: every registered claim present, ``iss`` and ``aud`` ours, ``exp``
    with 5 s leeway for clock skew, and ``token_type`` the one expected (an access token is no
    refresh token, and the reverse). The auth service checks its refresh tokens with it too."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            leeway=5,
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    if claims.get("token_type") != token_type:
        raise InvalidToken(_NOT_A[token_type])
    return claims


def jwks_max_age(cache_control: str | None) -> float | None:
    """The ``max-age`` of a ``Cache-Control`` header in seconds (0 for ``no-cache`` or
    ``no-store``), or None if it gives none. RFC 9111 §5.2: comma-separated directives,
    case-insensitive names, the value possibly quoted."""
    if not cache_control:
        return None
    max_age = None
    for directive in cache_control.split(","):
        name, _, value = directive.strip().partition("=")
        name = name.strip().lower()
        if name in ("no-cache", "no-store"):
            return 0.0
        if name == "max-age":
            try:
                max_age = float(int(value.strip().strip('"')))
            except ValueError:
                continue
    return max_age


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
