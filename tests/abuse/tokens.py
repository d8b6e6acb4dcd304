"""Forged and broken bearer tokens, made against the running platform's own signing key and
``kid``, so each case differs from a genuine token in exactly one way."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.reliability.harness import Harness
from tests.support.tokens import AUDIENCE, ISSUER, mint


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64json(data: dict[str, Any]) -> str:
    return _b64(json.dumps(data).encode())


def _claims(user_id: str, role: str = "admin") -> dict[str, Any]:
    now = int(time.time())
    return {
        "sub": user_id,
        "role": role,
        "token_type": "access",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
    }


async def bad_authorizations(harness: Harness, genuine: str, refresh: str) -> dict[str, str | None]:
    """Authorization header values that must all be refused with 401 (None: no header)."""
    key, kid = harness.signing_key(), await harness.kid()
    user_id = json.loads(base64.urlsafe_b64decode(genuine.split(".")[1] + "==="))["sub"]
    h, p, s = genuine.split(".")
    claims = json.loads(base64.urlsafe_b64decode(p + "==="))
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs_input = (
        f"{_b64json({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{_b64json(_claims(user_id))}"
    )
    hs_sig = _b64(hmac.new(public_pem, hs_input.encode(), hashlib.sha256).digest())
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def signed(**kw: Any) -> str:
        role = kw.pop("role", "admin")
        return "Bearer " + mint(user_id, role, key=kw.pop("key", key), kid=kw.pop("kid", kid), **kw)

    return {
        "missing": None,
        "empty bearer": "Bearer ",
        "basic scheme": "Basic dXNlcjpwYXNz",
        "malformed": "Bearer not-a-jwt",
        "malformed base64": "Bearer ###.###.###",
        "expired": signed(expires_in=-120),
        "tampered claims": f"Bearer {h}.{_b64json({**claims, 'role': 'admin'})}.{s}",
        "tampered signature": f"Bearer {h}.{p}.{s[:-8]}{'A' * 8 if not s.endswith('A' * 8) else 'B' * 8}",
        "alg none": f"Bearer {_b64json({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{_b64json(_claims(user_id))}.",
        "HS256 with the public key": f"Bearer {hs_input}.{hs_sig}",
        "wrong audience": signed(audience="someone-else"),
        "wrong issuer": signed(issuer="https://evil.example"),
        "refresh token as access (real)": f"Bearer {refresh}",
        "refresh token as access (minted)": signed(token_type="refresh"),
        "unknown kid": signed(kid="no-such-key", key=stranger),
        "our kid, another key": signed(key=stranger),
        "unknown role": signed(role="superuser"),
        "not a uuid subject": "Bearer " + mint("root", "admin", key=key, kid=kid),
    }
