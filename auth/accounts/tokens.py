"""Minting and verifying JWTs in the format every service's verifier (kit.security) expects.

Claims: ``sub`` (user id), ``role``, ``token_type`` (``access`` | ``refresh``), ``iss``, ``aud``,
``iat``, ``exp``, ``jti``; header ``kid``; RS256 or EdDSA only. Access tokens are checked by the
kit's own :class:`TokenVerifier` (fed with this service's JWKS), so auth accepts exactly what the
other services accept.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import jwt
from asgiref.sync import async_to_sync
from django.conf import settings

from kit.security import (
    ALLOWED_ALGORITHMS,
    InvalidToken,
    Principal,
    TokenVerifier,
    decode_claims,
)
from auth.accounts.keys import key_ring


@dataclass(frozen=True)
class IssuedToken:
    token: str
    jti: uuid.UUID
    expires_at: datetime


def mint(
    *, user_id: uuid.UUID, role: str, token_type: str, ttl_seconds: int, **extra: Any
) -> IssuedToken:
    signing = key_ring().signing
    now = int(time.time())
    jti = uuid.uuid4()
    claims = {
        "sub": str(user_id),
        "role": role,
        "token_type": token_type,
        "iss": settings.JWT_ISSUER,
        "aud": settings.JWT_AUDIENCE,
        "iat": now,
        "exp": now + ttl_seconds,
        "jti": str(jti),
        **extra,
    }
    token = jwt.encode(
        claims, signing.private_key, algorithm=signing.algorithm, headers={"kid": signing.kid}
    )
    return IssuedToken(
        token=token, jti=jti, expires_at=datetime.fromtimestamp(now + ttl_seconds, UTC)
    )


@cache
def access_verifier() -> TokenVerifier:
    return TokenVerifier(
        issuer=settings.JWT_ISSUER, audience=settings.JWT_AUDIENCE, jwks=key_ring().jwks()
    )


def verify_access(token: str) -> Principal:
    """The caller of an access token, or :class:`InvalidToken` — same rules as every service."""
    return async_to_sync(access_verifier().verify)(token)


def verify_refresh(token: str) -> dict[str, Any]:
    """Claims of a valid refresh token signed by one of our keys, or :class:`InvalidToken`."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidToken("malformed token") from exc
    alg, kid = header.get("alg"), header.get("kid")
    key = key_ring().verifying.get(kid) if isinstance(kid, str) else None
    if alg not in ALLOWED_ALGORITHMS or key is None or key.algorithm != alg:
        raise InvalidToken("unacceptable token header")
    claims = decode_claims(
        token,
        key.public_key,
        alg,
        audience=settings.JWT_AUDIENCE,
        issuer=settings.JWT_ISSUER,
        token_type="refresh",
    )
    try:
        claims["jti"] = uuid.UUID(str(claims["jti"]))
        claims["sub"] = uuid.UUID(str(claims["sub"]))
    except ValueError as exc:
        raise InvalidToken("bad token id or subject") from exc
    return claims
