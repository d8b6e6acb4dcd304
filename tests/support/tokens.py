"""A test key pair and token minting that follows the auth service's token format.

Tokens made here go through the same verification path as real ones (the kit's
``TokenVerifier`` with a JWKS), only the signing key is the test's own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from functools import cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "eventbooking-auth"
AUDIENCE = "eventbooking"
KID = "test-key-1"


@cache
def private_key() -> rsa.RSAPrivateKey:
    # EB_TEST_KEY_FILE lets separate processes (a shell, a server) share one test key.
    path = os.getenv("EB_TEST_KEY_FILE")
    if path and os.path.exists(path):
        return serialization.load_pem_private_key(open(path, "rb").read(), password=None)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if path:
        with open(path, "wb") as fh:
            fh.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
    return key


@cache
def other_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks() -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private_key().public_key()))
    jwk.update({"kid": KID, "alg": "RS256", "use": "sig"})
    return {"keys": [jwk]}


def claims(
    user_id: uuid.UUID | str | None = None,
    role: str = "customer",
    *,
    token_type: str = "access",
    expires_in: int = 300,
    issuer: str = ISSUER,
    audience: str = AUDIENCE,
    **extra: Any,
) -> dict[str, Any]:
    """The claims of a token as the auth service issues it (valid for ``expires_in`` seconds)."""
    now = int(time.time())
    return {
        "sub": str(user_id or uuid.uuid4()),
        "role": role,
        "token_type": token_type,
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + expires_in,
        "jti": str(uuid.uuid4()),
        **extra,
    }


def mint(
    user_id: uuid.UUID | str | None = None,
    role: str = "customer",
    *,
    kid: str = KID,
    key: Any = None,
    algorithm: str = "RS256",
    **claim_fields: Any,
) -> str:
    payload = claims(user_id, role, **claim_fields)
    return jwt.encode(payload, key or private_key(), algorithm=algorithm, headers={"kid": kid})


def b64url_json(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def forged(payload: dict[str, Any], kid: str, *, hmac_secret: bytes | None = None) -> str:
    """A token no RSA key signed: ``alg: none`` with an empty signature, or, given
    ``hmac_secret``, HS256 with it (the classic confusion attack passes the public key's PEM)."""
    alg = "none" if hmac_secret is None else "HS256"
    signing_input = f"{b64url_json({'alg': alg, 'typ': 'JWT', 'kid': kid})}.{b64url_json(payload)}"
    if hmac_secret is None:
        return f"{signing_input}."
    mac = hmac.new(hmac_secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
