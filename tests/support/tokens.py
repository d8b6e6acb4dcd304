"""A test key pair and token minting that follows the auth service's token format.

Tokens made here go through the same verification path as real ones (the kit's
``TokenVerifier`` with a JWKS), only the signing key is the test's own.
"""

from __future__ import annotations

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


def mint(
    user_id: uuid.UUID | str | None = None,
    role: str = "customer",
    *,
    token_type: str = "access",
    expires_in: int = 300,
    issuer: str = ISSUER,
    audience: str = AUDIENCE,
    kid: str = KID,
    key: Any = None,
    algorithm: str = "RS256",
    **extra: Any,
) -> str:
    now = int(time.time())
    claims = {
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
    return jwt.encode(claims, key or private_key(), algorithm=algorithm, headers={"kid": kid})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
