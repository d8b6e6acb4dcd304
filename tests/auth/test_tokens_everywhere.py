"""Every bad token is refused (401) by auth's own /auth/me and by a FastAPI service verifying
through the shared kit with auth's published JWKS; a genuine auth token works in both."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from apps.events.bootstrap import build as build_events
from tests.auth.helpers import assert_problem, b64json, b64url, bearer, tokens_for, unverified_parts
from tests.conftest import http_client
from tests.support.api_bodies import event_body

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _claims(sub: str, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "sub": sub,
        "role": "organizer",
        "token_type": "access",
        "iss": "eventbooking-auth",
        "aud": "eventbooking",
        "iat": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
    }
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def bad_tokens(user_id: str, pair: dict[str, str]) -> dict[str, str]:
    from auth.accounts.keys import key_ring

    signing = key_ring().signing
    kid = signing.kid

    def signed(
        claims: dict[str, Any], *, key: Any = signing.private_key, headers: Any = None
    ) -> str:
        return jwt.encode(claims, key, algorithm="RS256", headers=headers or {"kid": kid})

    header, claims = unverified_parts(pair["access_token"])
    h, p, s = pair["access_token"].split(".")
    public_pem = signing.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs_head = b64json({"alg": "HS256", "typ": "JWT", "kid": kid})
    hs_body = b64json(_claims(user_id))
    hs_sig = b64url(hmac.new(public_pem, f"{hs_head}.{hs_body}".encode(), hashlib.sha256).digest())
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "expired": signed(_claims(user_id, iat=int(time.time()) - 3600, exp=int(time.time()) - 60)),
        "tampered-claims": f"{h}.{b64json({**claims, 'role': 'admin'})}.{s}",
        "tampered-signature": f"{h}.{p}.{s[:-6]}{'A' * 6 if not s.endswith('AAAAAA') else 'B' * 6}",
        "alg-none": f"{b64json({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{b64json(_claims(user_id))}.",
        "hs256-with-public-key": f"{hs_head}.{hs_body}.{hs_sig}",
        "wrong-audience": signed(_claims(user_id, aud="someone-else")),
        "wrong-issuer": signed(_claims(user_id, iss="https://evil.example")),
        "refresh-as-access": pair["refresh_token"],
        "unknown-kid": signed(_claims(user_id), headers={"kid": "no-such-key"}),
        "foreign-key-claiming-our-kid": signed(_claims(user_id), key=stranger),
        "no-kid": signed(_claims(user_id), headers={"typ": "JWT"}),
        "missing-exp": signed(_claims(user_id, exp=None)),
        "not-a-jwt": "not.a.jwt",
    }


@pytest.fixture
async def events_with_auth_keys(client, start_service):
    jwks = (await client.get("/auth/jwks.json")).json()
    # Its own database (dropped with the run's): an event_created row this instance leaves
    # unpublished must not surface later in the events tests' queues.
    prefix = os.environ["DATABASE_PREFIX"] + "authx_"
    async with start_service(
        build_events, jwt_jwks=json.dumps(jwks), database_prefix=prefix
    ) as svc:
        async with http_client(svc) as events_client:
            yield events_client


async def test_bad_tokens_get_401_from_auth_and_from_a_kit_service(client, events_with_auth_keys):
    user, pair = await tokens_for(client, role="organizer")

    # The genuine token works in both places (and the events service sees the same user).
    assert (await client.get("/auth/me", headers=bearer(pair["access_token"]))).status_code == 200
    created = await events_with_auth_keys.post(
        "/events/create", json=event_body(), headers=bearer(pair["access_token"])
    )
    assert created.status_code == 201, created.text
    assert created.json()["organizer_id"] == user["id"]

    for case, token in bad_tokens(user["id"], pair).items():
        at_auth = await client.get("/auth/me", headers=bearer(token))
        at_events = await events_with_auth_keys.post(
            "/events/create", json=event_body(), headers=bearer(token)
        )
        assert (case, at_auth.status_code, at_events.status_code) == (case, 401, 401), (
            at_auth.text,
            at_events.text,
        )
        assert_problem(at_auth, 401)
        assert_problem(at_events, 401)


def test_development_key_is_generated_once_and_reused(tmp_path):
    from auth.accounts.keys import build_key_ring

    def ring() -> Any:
        return build_key_ring(
            private_key_pem=None,
            private_key_file=None,
            key_id=None,
            extra_public_key_files=[],
            generate_in=str(tmp_path / "keys"),
        )

    first, second = ring(), ring()
    assert first.signing.kid == second.signing.kid
    assert first.jwks() == second.jwks()
    assert [p.name for p in (tmp_path / "keys").iterdir()] == ["jwt_signing_key.pem"]


def test_production_without_a_key_refuses_to_start():
    from django.core.exceptions import ImproperlyConfigured

    from auth.accounts.keys import build_key_ring

    with pytest.raises(ImproperlyConfigured):
        build_key_ring(
            private_key_pem=None,
            private_key_file=None,
            key_id=None,
            extra_public_key_files=[],
            generate_in=None,
        )


def test_rotation_publishes_the_previous_key_too(tmp_path):
    from auth.accounts.keys import build_key_ring, generate_once

    old_pem = generate_once(tmp_path / "old")
    (tmp_path / "old.pem").write_bytes(old_pem)
    new = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    new_pem = new.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    ring = build_key_ring(
        private_key_pem=new_pem,
        private_key_file=None,
        key_id=None,
        extra_public_key_files=[str(tmp_path / "old.pem")],
        generate_in=None,
    )
    assert len(ring.jwks()["keys"]) == 2
    assert ring.signing.kid in {k["kid"] for k in ring.jwks()["keys"]}
