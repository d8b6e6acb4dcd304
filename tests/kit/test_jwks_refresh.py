"""The token verifier (services and gateway) keeps the auth service's JWKS only as long as its
``Cache-Control: max-age`` says (bounded; 300 s without one), so a key withdrawn at the auth
service stops verifying within minutes, not at the next restart. Against a real little HTTP
server whose JWKS changes."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

import jwt
import pytest
from aiohttp import web

from kit.security import InvalidToken, TokenVerifier, jwks_max_age
from tests.support.tokens import AUDIENCE, ISSUER, jwks, mint, other_private_key

OTHER_KID = "test-key-2"


def other_jwk() -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(other_private_key().public_key()))
    jwk.update({"kid": OTHER_KID, "alg": "RS256", "use": "sig"})
    return jwk


def other_token() -> str:
    return mint(uuid.uuid4(), kid=OTHER_KID, key=other_private_key())


class JwksServer:
    """Serves ``self.keys`` as a JWKS with ``self.cache_control``; ``self.failing`` answers 500."""

    def __init__(self) -> None:
        self.keys = jwks()["keys"] + [other_jwk()]
        self.cache_control: str | None = "public, max-age=1"
        self.failing = False
        self.fetches = 0
        self.url = ""

    async def handle(self, _request: web.Request) -> web.Response:
        self.fetches += 1
        if self.failing:
            return web.Response(status=500)
        headers = {"Cache-Control": self.cache_control} if self.cache_control else {}
        return web.json_response({"keys": self.keys}, headers=headers)


@pytest.fixture
async def server():
    srv = JwksServer()
    app = web.Application()
    app.router.add_get("/auth/jwks.json", srv.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - aiohttp's bound port
    srv.url = f"http://127.0.0.1:{port}/auth/jwks.json"
    try:
        yield srv
    finally:
        await runner.cleanup()


def verifier(url: str, **kw: Any) -> TokenVerifier:
    kw.setdefault("jwks_ttl_min", 0)
    return TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url=url, **kw)


async def test_a_withdrawn_key_stops_verifying_once_the_jwks_max_age_has_passed(server):
    v = verifier(server.url)
    token = other_token()
    for _ in range(5):
        assert (await v.verify(token)).role == "customer"
    assert server.fetches == 1  # within max-age: no fetch per request

    server.keys = jwks()["keys"]  # the auth service withdrew the key
    assert (await v.verify(token)).role == "customer"  # still fresh
    await asyncio.sleep(1.2)
    with pytest.raises(InvalidToken):
        await v.verify(token)  # the verified-token cache does not outlive the key either
    assert (await v.verify(mint(uuid.uuid4()))).role == "customer"  # the kept key still works
    assert server.fetches == 2


async def test_without_max_age_the_default_applies_and_a_long_one_is_capped(server):
    server.cache_control = None
    v = verifier(server.url, jwks_ttl_default=1)
    token = other_token()
    await v.verify(token)
    server.keys = jwks()["keys"]
    await asyncio.sleep(1.2)
    with pytest.raises(InvalidToken):
        await v.verify(token)

    server.keys = jwks()["keys"] + [other_jwk()]
    server.cache_control = "public, max-age=86400"
    capped = verifier(server.url, jwks_ttl_max=1)
    await capped.verify(token)
    server.keys = jwks()["keys"]
    await asyncio.sleep(1.2)
    with pytest.raises(InvalidToken):
        await capped.verify(token)


async def test_a_failing_refresh_keeps_the_last_good_keys_for_a_bounded_time(server, caplog):
    caplog.set_level(logging.WARNING, logger="kit.security")
    v = verifier(server.url, jwks_stale_seconds=1, retry_seconds=0)
    token = mint(uuid.uuid4())
    await v.verify(token)
    server.failing = True
    await asyncio.sleep(1.2)
    assert (await v.verify(token)).role == "customer"  # auth is down: last good keys kept
    assert any("JWKS" in r.getMessage() for r in caplog.records)
    await asyncio.sleep(1.2)
    with pytest.raises(InvalidToken):
        await v.verify(token)  # kept no longer than jwks_stale_seconds past max-age
    server.failing = False
    assert (await v.verify(mint(uuid.uuid4()))).role == "customer"  # back once auth is


async def test_an_unknown_kid_refreshes_at_once_but_rate_limited(server):
    server.cache_control = "public, max-age=300"
    server.keys = jwks()["keys"]
    v = verifier(server.url, refresh_interval=1)
    await v.verify(mint(uuid.uuid4()))
    server.keys = jwks()["keys"] + [other_jwk()]  # a new key, e.g. a rotation
    await asyncio.sleep(1.1)  # unknown kids fetch at most once per refresh_interval
    assert (await v.verify(other_token())).role == "customer"
    assert server.fetches == 2
    for _ in range(3):  # a made-up kid does not make every request fetch the JWKS
        with pytest.raises(InvalidToken):
            await v.verify(mint(uuid.uuid4(), kid="made-up"))
    assert server.fetches == 2


async def test_an_inline_jwks_is_used_as_given():
    v = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks())
    assert (await v.verify(mint(uuid.uuid4()))).role == "customer"


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("public, max-age=300", 300),
        ('max-age="60"', 60),
        ("MAX-AGE=5, public", 5),
        ("no-store", 0),
        ("public", None),
        (None, None),
        ("max-age=soon", None),
    ],
)
def test_the_max_age_is_read_from_cache_control(header, seconds):
    assert jwks_max_age(header) == seconds
