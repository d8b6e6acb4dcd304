"""The signing key ring: the current private key (with its ``kid``) and every public key that
still verifies tokens (published at ``GET /auth/jwks.json``).

Keys come from configuration (``JWT_PRIVATE_KEY`` or ``JWT_PRIVATE_KEY_FILE``; earlier keys for
rotation in ``JWT_EXTRA_PUBLIC_KEYS``). In development/test, when none is configured, a key pair
is generated once under ``JWT_KEYS_DIR`` (default ``<repo>/.var/keys``, outside version
control) and reused by every later start and every replica.

A key's ``kid`` is ``JWT_KEY_ID`` for the signing key, the ``kid`` named by a ``kid=path``
entry of ``JWT_EXTRA_PUBLIC_KEYS`` for an earlier key, else the key's RFC 7638 thumbprint.
Verifiers pick the key by the token's ``kid`` header, so an earlier key must be published under
the kid it signed with: ``JWT_KEY_ID=2026-12`` and ``JWT_EXTRA_PUBLIC_KEYS=2026-11=old.pem``
after signing with ``JWT_KEY_ID=2026-11``; a plain path when the old key's kid was its thumbprint.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

log = logging.getLogger(__name__)

GENERATED_KEY_NAME = "jwt_signing_key.pem"

# A key id as the platform makes them (a thumbprint: 43 base64url characters) and as booking
# accepts them for its ticket keys: safe in a token header, a URL, a log line, a database column.
KID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class VerificationKey:
    kid: str
    algorithm: str  # "RS256" | "EdDSA"
    public_key: Any

    def jwk(self) -> dict[str, Any]:
        algo = (
            jwt.algorithms.RSAAlgorithm
            if self.algorithm == "RS256"
            else jwt.algorithms.OKPAlgorithm
        )
        data = json.loads(algo.to_jwk(self.public_key))
        data.pop("key_ops", None)  # RFC 7517: "use" and "key_ops" should not both be present
        data.update({"kid": self.kid, "alg": self.algorithm, "use": "sig"})
        return data


@dataclass(frozen=True)
class SigningKey(VerificationKey):
    private_key: Any = None


@dataclass(frozen=True)
class KeyRing:
    signing: SigningKey
    verifying: dict[str, VerificationKey]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.jwk() for k in self.verifying.values()]}


def algorithm_for(key: Any) -> str:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ImproperlyConfigured("RSA signing keys must have at least 2048 bits.")
        return "RS256"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "EdDSA"
    raise ImproperlyConfigured(
        f"Unsupported JWT key type {type(key).__name__}: use RSA or Ed25519."
    )


def thumbprint(public_key: Any) -> str:
    """RFC 7638 JWK thumbprint: the same key gets the same ``kid`` in every replica."""
    if isinstance(public_key, rsa.RSAPublicKey):
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public_key))
        members = {"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}
    else:
        jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(public_key))
        members = {"crv": jwk["crv"], "kty": "OKP", "x": jwk["x"]}
    digest = hashlib.sha256(
        json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    ).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _load_private_pem(pem: bytes) -> Any:
    return serialization.load_pem_private_key(pem, password=None)


def _load_public_pem(pem: bytes) -> Any:
    """A PEM public key, or the public half of a PEM private key."""
    if b"PRIVATE KEY" in pem:
        return _load_private_pem(pem).public_key()
    return serialization.load_pem_public_key(pem)


def generate_once(directory: str | Path) -> bytes:
    """The development key pair in ``directory``, generated on first use. Replicas starting
    together agree on one key: the file appears atomically (link of a complete temp file)."""
    path = Path(directory) / GENERATED_KEY_NAME
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-key-")
    try:
        os.write(fd, pem)
        os.fsync(fd)
        os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process won the race: use its key
            log.warning("generated a development JWT signing key in %s", path)
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)
    return path.read_bytes()


def _checked_kid(kid: str, setting: str) -> str:
    if not KID.fullmatch(kid):
        raise ImproperlyConfigured(
            f"{setting}: {kid!r} is not a usable key id (1 to 64 letters, digits, '-' or '_')."
        )
    return kid


def _extra_key(entry: str) -> VerificationKey:
    """An entry of ``JWT_EXTRA_PUBLIC_KEYS``: ``path`` (published under the key's thumbprint) or
    ``kid=path`` (under ``kid``: the kid the tokens it signed carry in their header)."""
    setting = f"JWT_EXTRA_PUBLIC_KEYS entry {entry!r}"
    named, is_named, rest = entry.partition("=")
    kid = _checked_kid(named.strip(), setting) if is_named else None
    path = rest.strip() if is_named else entry
    if not path:
        raise ImproperlyConfigured(f"{setting}: no file; an entry is `path` or `kid=path`.")
    try:
        public = _load_public_pem(Path(path).read_bytes())
        algorithm = algorithm_for(public)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm, ImproperlyConfigured) as exc:
        raise ImproperlyConfigured(
            f"{setting}: no usable PEM public key in {path} ({exc})"
        ) from exc
    return VerificationKey(kid=kid or thumbprint(public), algorithm=algorithm, public_key=public)


def build_key_ring(
    *,
    private_key_pem: str | None,
    private_key_file: str | None,
    key_id: str | None,
    extra_public_key_files: list[str],
    generate_in: str | None,
) -> KeyRing:
    """The signing key and every key that verifies, from the settings; ImproperlyConfigured (the
    service does not start) for a missing or unreadable key, a bad key id, or one key id given
    to two different keys (a verifier could not tell which one a token means)."""
    if private_key_pem:
        pem = private_key_pem.replace("\\n", "\n").encode()
    elif private_key_file:
        pem = Path(private_key_file).read_bytes()
    elif generate_in:
        pem = generate_once(generate_in)
    else:
        raise ImproperlyConfigured(
            "No JWT signing key: set JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE (a development key "
            "is generated only when ENVIRONMENT is development or test)."
        )
    private = _load_private_pem(pem)
    public = private.public_key()
    signing = SigningKey(
        kid=_checked_kid(key_id, "JWT_KEY_ID") if key_id else thumbprint(public),
        algorithm=algorithm_for(private),
        public_key=public,
        private_key=private,
    )
    verifying: dict[str, VerificationKey] = {signing.kid: signing}
    for entry in extra_public_key_files:
        key = _extra_key(entry)
        known = verifying.get(key.kid)
        if known is None:
            verifying[key.kid] = key
        elif thumbprint(known.public_key) != thumbprint(key.public_key):
            owner = "the signing key" if known is signing else "another entry's key"
            raise ImproperlyConfigured(
                f"JWT_EXTRA_PUBLIC_KEYS entry {entry!r}: the key id {key.kid!r} already names "
                f"{owner}; a key id names one key only."
            )
        # the same key under the same kid again (the current key listed too): published once
    return KeyRing(signing=signing, verifying=verifying)


@cache
def key_ring() -> KeyRing:
    """The process's key ring, from the Django settings (loaded once)."""
    return build_key_ring(
        private_key_pem=settings.JWT_PRIVATE_KEY,
        private_key_file=settings.JWT_PRIVATE_KEY_FILE,
        key_id=settings.JWT_KEY_ID,
        extra_public_key_files=settings.JWT_EXTRA_PUBLIC_KEYS,
        generate_in=settings.JWT_GENERATE_KEYS_IN,
    )
