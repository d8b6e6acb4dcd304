"""Forged and broken bearer tokens, made against the running platform's own signing key and
``kid``, so each case differs from a genuine token in exactly one way."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from tests.reliability.harness import Harness
from tests.support.tokens import b64url_json, claims, forged, mint, public_pem


async def bad_authorizations(harness: Harness, genuine: str, refresh: str) -> dict[str, str | None]:
    """Authorization header values that must all be refused with 401 (None: no header)."""
    key, kid = harness.signing_key(), await harness.kid()
    user_id = json.loads(base64.urlsafe_b64decode(genuine.split(".")[1] + "==="))["sub"]
    h, p, s = genuine.split(".")
    genuine_claims = json.loads(base64.urlsafe_b64decode(p + "==="))
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
        "tampered claims": f"Bearer {h}.{b64url_json({**genuine_claims, 'role': 'admin'})}.{s}",
        "tampered signature": f"Bearer {h}.{p}.{s[:-8]}{'A' * 8 if not s.endswith('A' * 8) else 'B' * 8}",
        "alg none": "Bearer " + forged(claims(user_id, "admin"), kid),
        "HS256 with the public key": "Bearer "
        + forged(claims(user_id, "admin"), kid, hmac_secret=public_pem(key)),
        "wrong audience": signed(audience="someone-else"),
        "wrong issuer": signed(issuer="https://evil.example"),
        "refresh token as access (real)": f"Bearer {refresh}",
        "refresh token as access (minted)": signed(token_type="refresh"),
        "unknown kid": signed(kid="no-such-key", key=stranger),
        "our kid, another key": signed(key=stranger),
        "unknown role": signed(role="superuser"),
        "not a uuid subject": "Bearer " + mint("root", "admin", key=key, kid=kid),
    }
