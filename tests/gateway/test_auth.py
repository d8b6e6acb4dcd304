"""JWT at the edge: a protected route without a valid access token gets 401 from the gateway and
the service behind it never sees the request; public routes need no token."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from tests.gateway.conftest import Stack
from tests.support.tokens import (
    KID,
    b64url_json,
    bearer,
    claims,
    forged,
    mint,
    other_private_key,
    private_key,
    public_pem,
)


def tampered() -> str:
    header, payload, signature = mint(role="customer").split(".")
    fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    fields["role"] = "admin"
    return f"{header}.{b64url_json(fields)}.{signature}"


def alg_none() -> str:
    return forged(claims(role="admin"), KID)


def hs256_with_public_key() -> str:
    # The classic confusion attack: the (public) verification key used as an HMAC secret.
    return forged(claims(role="admin"), KID, hmac_secret=public_pem(private_key()))


BAD_AUTHORIZATION = {
    "missing": None,
    "empty bearer": "Bearer",
    "not bearer": "Basic dXNlcjpwYXNz",
    "garbage": "Bearer not-a-jwt",
    "expired": lambda: "Bearer " + mint(expires_in=-60),
    "tampered": lambda: "Bearer " + tampered(),
    "alg none": lambda: "Bearer " + alg_none(),
    "hs256 with the public key": lambda: "Bearer " + hs256_with_public_key(),
    "wrong audience": lambda: "Bearer " + mint(audience="someone-else"),
    "wrong issuer": lambda: "Bearer " + mint(issuer="https://evil.example"),
    "refresh token": lambda: "Bearer " + mint(token_type="refresh"),
    "unknown key": lambda: "Bearer " + mint(kid="other", key=other_private_key()),
    "right kid, other key": lambda: "Bearer " + mint(key=other_private_key()),
}


@pytest.mark.parametrize("case", list(BAD_AUTHORIZATION))
async def test_bad_tokens_are_401_at_the_gateway(stack: Stack, case: str) -> None:
    value = BAD_AUTHORIZATION[case]
    value = value() if callable(value) else value
    headers = {"x-user-id": str(uuid.uuid4()), "x-user-role": "admin"}  # spoofing does not help
    if value is not None:
        headers["authorization"] = value
    resp = await stack.client.post("/booking/create", json={"quantity": 1}, headers=headers)
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert resp.json()["status"] == 401
    assert sum(stack.seen().values()) == 0  # no service saw anything


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/auth/me"),
        ("POST", "/events/create"),
        ("PUT", "/events/e-1/update"),
        ("DELETE", "/events/e-1"),
        ("GET", "/events/e-1/attendees"),  # deeper than /events/{id}
        ("POST", "/auth/jwks.json"),
        ("GET", "/auth/register"),
        ("GET", "/booking"),
        ("POST", "/payments/process"),
        ("GET", "/notifications"),
        ("POST", "/notifications/send"),
        ("GET", "/analytics/report"),
    ],
)
async def test_protected_routes_need_a_token(stack: Stack, method: str, path: str) -> None:
    resp = await stack.client.request(method, path)
    assert resp.status_code == 401
    assert sum(stack.seen().values()) == 0


@pytest.mark.parametrize(
    ("method", "path", "service"),
    [
        ("POST", "/auth/register", "auth"),
        ("POST", "/auth/login", "auth"),
        ("POST", "/auth/refresh", "auth"),
        ("GET", "/auth/jwks.json", "auth"),
        ("GET", "/events", "events"),
        ("GET", "/events/3b9e2a51-5c1a-4f3e-9d55-0d6c1ad1c001", "events"),
    ],
)
async def test_public_routes_pass_without_a_token(
    stack: Stack, method: str, path: str, service: str
) -> None:
    resp = await stack.client.request(method, path)
    assert resp.status_code == 200, resp.text
    assert stack.seen()[service] == 1


async def test_a_valid_token_passes_and_reaches_the_service_unchanged(stack: Stack) -> None:
    token = mint(role="organizer")
    resp = await stack.client.post("/events/create", json={}, headers=bearer(token))
    assert resp.status_code == 200
    assert stack.upstreams["events"].requests[0].header("authorization") == f"Bearer {token}"


async def test_a_public_route_with_a_bad_token_still_passes(stack: Stack) -> None:
    # The gateway does not judge tokens on public routes; the service decides what they mean.
    resp = await stack.client.get("/events", headers={"authorization": "Bearer junk"})
    assert resp.status_code == 200


async def test_keys_come_from_the_auth_services_jwks_url(echoes) -> None:
    from tests.gateway.conftest import gateway_stack
    from tests.support.tokens import jwks

    auth_echo, auth_url = echoes["auth"]
    async with gateway_stack(echoes, jwt_jwks=None, jwks_url=f"{auth_url}/auth/jwks.json") as s:
        s.upstreams["auth"].jwks = jwks()
        ok = await s.client.get("/booking", headers=bearer(mint()))
        assert ok.status_code == 200
        assert auth_echo.jwks_fetches == 1  # fetched on first use of an unknown kid, then cached
        assert (await s.client.get("/booking", headers=bearer(mint()))).status_code == 200
        assert auth_echo.jwks_fetches == 1
        foreign = await s.client.get(
            "/booking", headers=bearer(mint(kid="not-published", key=other_private_key()))
        )
        assert foreign.status_code == 401
        assert s.seen()["booking"] == 2


async def test_jwks_unreachable_means_401_not_500(echoes) -> None:
    from tests.gateway.conftest import free_port, gateway_stack

    dead = f"http://127.0.0.1:{free_port()}/auth/jwks.json"
    async with gateway_stack(echoes, jwt_jwks=None, jwks_url=dead) as s:
        resp = await s.client.get("/booking", headers=bearer(mint()))
        assert resp.status_code == 401
        assert sum(s.seen().values()) == 0
