"""Body size and rate limits: refused at the gateway, before any service sees the request."""

from __future__ import annotations

import asyncio

from gateway.limits import RateLimiter, client_key
from tests.gateway.conftest import gateway_stack
from tests.support.tokens import bearer, mint


async def raw_request(
    base_url: str,
    head: bytes,
    body_parts: tuple[bytes, ...] = (),
) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (no client-side normalisation) and read one response, without
    ever finishing a body the test leaves open."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head)
        for part in body_parts:
            writer.write(part)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        headers: dict[str, str] = {}
        while (line := await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b""
        if "content-length" in headers:
            body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 10)
        return int(status_line.split()[1]), headers, body
    finally:
        writer.close()


async def test_declared_oversize_body_is_413_without_sending_it(echoes) -> None:
    async with gateway_stack(echoes, max_body_bytes=1024) as s:
        token = mint()
        # The headers promise 10 MB; not one byte of the body is ever sent.
        status, headers, body = await raw_request(
            s.gateway,
            (
                "POST /booking/create HTTP/1.1\r\nHost: gw\r\n"
                f"Authorization: Bearer {token}\r\nContent-Length: 10000000\r\n\r\n"
            ).encode(),
        )
        assert status == 413, body
        assert headers["content-type"] == "application/problem+json"
        assert b'"status":413' in body
        assert sum(s.seen().values()) == 0


async def test_chunked_oversize_body_is_413_before_it_ends(echoes) -> None:
    async with gateway_stack(echoes, max_body_bytes=1024) as s:
        token = mint()
        chunk = b"400\r\n" + b"y" * 1024 + b"\r\n"
        # Two 1 KiB chunks and no terminating chunk: the gateway must answer anyway.
        status, headers, body = await raw_request(
            s.gateway,
            (
                "POST /booking/create HTTP/1.1\r\nHost: gw\r\n"
                f"Authorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\n"
            ).encode(),
            (chunk, chunk),
        )
        assert status == 413, body
        assert "x-trace-id" in headers
        assert sum(s.seen().values()) == 0


async def test_body_at_the_limit_passes(echoes) -> None:
    async with gateway_stack(echoes, max_body_bytes=1024) as s:
        resp = await s.client.post("/booking/create", content=b"z" * 1024, headers=bearer(mint()))
        assert resp.status_code == 200
        assert s.upstreams["booking"].requests[0].body == b"z" * 1024


async def test_anonymous_clients_are_limited_per_address_with_retry_after(echoes) -> None:
    # 0.2 requests/s with a bucket of one: the second request within 5 s is throttled.
    async with gateway_stack(echoes, gateway_rate_limit=0.2) as s:
        first = await s.client.get("/events")
        second = await s.client.get("/events")
        assert first.status_code == 200
        assert second.status_code == 429
        assert second.headers["content-type"] == "application/problem+json"
        assert 1 <= int(second.headers["retry-after"]) <= 5
        assert s.seen()["events"] == 1


async def test_authenticated_users_are_limited_per_user(echoes) -> None:
    async with gateway_stack(echoes, gateway_rate_limit=0.2) as s:
        alice, bob = bearer(mint()), bearer(mint())
        assert (await s.client.get("/booking", headers=alice)).status_code == 200
        throttled = await s.client.get("/booking", headers=alice)
        assert throttled.status_code == 429 and "retry-after" in throttled.headers
        # Same address, another user: a bucket of their own.
        assert (await s.client.get("/booking", headers=bob)).status_code == 200
        assert s.seen()["booking"] == 2


async def test_public_routes_called_with_a_token_are_limited_per_user(echoes) -> None:
    async with gateway_stack(echoes, gateway_rate_limit=0.2) as s:
        alice, bob = bearer(mint()), bearer(mint())
        assert (await s.client.get("/events", headers=alice)).status_code == 200
        assert (await s.client.get("/events", headers=alice)).status_code == 429
        # Same address: another user, and an anonymous client, each have a bucket of their own.
        assert (await s.client.get("/events", headers=bob)).status_code == 200
        assert (await s.client.get("/events")).status_code == 200
        # A bad token on a public route is not refused; it counts against the address (spent).
        assert (await s.client.get("/events", headers=bearer("bad.token"))).status_code == 429
        assert s.seen()["events"] == 3


async def test_zero_turns_the_rate_limit_off(echoes) -> None:
    async with gateway_stack(echoes, gateway_rate_limit=0) as s:
        statuses = {(await s.client.get("/events")).status_code for _ in range(30)}
        assert statuses == {200}


async def test_a_complete_chunked_body_over_the_limit_is_413(echoes) -> None:
    # No Content-Length to refuse up front: the count of bytes read is what stops it.
    async with gateway_stack(echoes, max_body_bytes=1024) as s:

        async def chunks():
            for _ in range(3):
                yield b"w" * 512

        resp = await s.client.post("/booking/create", content=chunks(), headers=bearer(mint()))
        assert resp.status_code == 413
        assert resp.json()["type"].endswith("/body-too-large")
        assert sum(s.seen().values()) == 0


async def test_bad_tokens_are_counted_against_the_address(echoes) -> None:
    # A client spraying invalid tokens never becomes a user: its 401s spend its address's
    # tokens, so it is throttled like any anonymous client.
    async with gateway_stack(echoes, gateway_rate_limit=0.2) as s:
        first = await s.client.get("/booking", headers=bearer("not-a-token"))
        second = await s.client.get("/booking", headers=bearer("another.bad.token"))
        third = await s.client.get("/booking")  # no token at all: the same address
        assert first.status_code == 401
        assert second.status_code == 429 and "retry-after" in second.headers
        assert third.status_code == 429
        # A real user at that address has a bucket of their own.
        assert (await s.client.get("/booking", headers=bearer(mint()))).status_code == 200
        assert s.seen()["booking"] == 1


async def test_ipv6_clients_share_one_bucket_per_64(echoes) -> None:
    # Whoever holds a /64 can use 2^64 addresses: each /64 is one client.
    async with gateway_stack(echoes, gateway_rate_limit=0.2, behind_balancer=True) as s:

        async def from_(address: str) -> int:
            return (await s.client.get("/events", headers={"x-forwarded-for": address})).status_code

        assert await from_("2001:db8:1:2::1") == 200
        assert await from_("2001:db8:1:2:ffff:eeee:dddd:9") == 429
        assert await from_("2001:db8:1:3::1") == 200  # the next /64 is somebody else
        assert await from_("192.0.2.1") == 200
        assert await from_("192.0.2.2") == 200  # IPv4 stays per address


def test_a_full_limiter_evicts_the_least_recently_used_bucket() -> None:
    limiter = RateLimiter(rate=0.001, burst=1, max_keys=2)
    assert limiter.take("addr:a") == 0
    assert limiter.take("addr:b") == 0
    assert limiter.take("addr:a") > 0  # a is throttled, and now the most recently used
    assert limiter.take("addr:c") == 0  # full: b goes, not everybody
    assert limiter.take("addr:a") > 0  # a is still throttled (clearing all would free it)
    assert limiter.take("addr:b") == 0  # b was evicted: a new bucket


def test_client_keys() -> None:
    assert client_key("192.0.2.1") == "addr:192.0.2.1"
    assert (
        client_key("2001:db8:1:2::1")
        == client_key("2001:DB8:1:2:ffff::9")
        == ("addr:2001:db8:1:2::/64")
    )
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.1") == "addr:192.0.2.1"  # IPv4 mapped into IPv6
    assert client_key(None) == "addr:unknown"
