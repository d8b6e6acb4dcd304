"""Edges of the auth service: the body cap (413, as the gateway's), the JWKS cache lifetime, and
which peers' X-Forwarded-For is believed by default."""

from __future__ import annotations

import pytest

from tests.auth.helpers import assert_problem

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


async def test_a_body_over_the_gateways_cap_is_413(client, settings):
    from gateway.config import GatewaySettings

    cap = GatewaySettings().max_body_bytes
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == cap
    big = b'{"email": "a@example.com", "password": "' + b"x" * cap + b'"}'
    for path in ("/auth/login", "/auth/register", "/auth/refresh", "/auth/logout"):
        resp = await client.post(path, content=big, headers={"content-type": "application/json"})
        assert_problem(resp, 413)

    async def chunks():  # no Content-Length: the cap holds on the bytes actually read
        for _ in range(cap // 65536 + 2):
            yield b" " * 65536

    resp = await client.post(
        "/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(resp, 413)


async def test_jwks_may_be_cached_for_five_minutes(client):
    resp = await client.get("/auth/jwks.json")
    assert resp.status_code == 200
    assert resp.headers["cache-control"] == "public, max-age=300"


def test_only_loopback_proxies_are_trusted_by_default(monkeypatch):
    from auth.config.env import load
    from auth.core.client_address import resolve

    monkeypatch.delenv("TRUSTED_PROXIES", raising=False)
    trusted = [p.strip() for p in load().trusted_proxies.split(",")]
    assert trusted == ["127.0.0.1", "::1"]
    # A private-network peer is not a proxy unless named: its header is not believed.
    assert resolve("10.0.0.5", "203.0.113.9", trusted) == "10.0.0.5"
    assert resolve("192.168.1.5", "203.0.113.9", trusted) == "192.168.1.5"
    # The gateway replaces X-Forwarded-For with the peer it saw: the right-most entry is believed.
    assert resolve("127.0.0.1", "203.0.113.9", trusted) == "203.0.113.9"
    assert resolve("10.0.0.5", "203.0.113.9", ["10.0.0.0/24"]) == "203.0.113.9"
