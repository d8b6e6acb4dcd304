"""Upstream failures become clear problem details; nothing a client sends produces a 500."""

from __future__ import annotations

import asyncio
import contextlib
import random

from tests.gateway.conftest import gateway_stack
from tests.gateway.test_limits import raw_request
from tests.support.tokens import bearer, mint


async def test_upstream_down_is_503_problem(echoes) -> None:
    async with gateway_stack(echoes, dead=("booking",)) as s:
        resp = await s.client.get("/booking", headers=bearer(mint()))
        assert resp.status_code == 503
        assert resp.headers["content-type"] == "application/problem+json"
        body = resp.json()
        assert body["status"] == 503 and body["service"] == "booking"
        assert resp.headers["retry-after"] == "1"
        assert "x-trace-id" in resp.headers
        # Other services are unaffected.
        assert (await s.client.get("/events")).status_code == 200


async def test_slow_upstream_is_504_problem(echoes) -> None:
    async with gateway_stack(echoes, upstream_timeout_seconds=0.3) as s:
        resp = await s.client.get("/booking/slow", headers=bearer(mint()))
        assert resp.status_code == 504
        assert resp.json()["status"] == 504
        assert resp.headers["content-type"] == "application/problem+json"


@contextlib.asynccontextmanager
async def garbage_server():
    """Something listening that does not speak HTTP."""

    async def handle(reader, writer):
        await reader.read(1024)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


async def test_upstream_answering_garbage_is_502_problem(echoes) -> None:
    async with garbage_server() as url, gateway_stack(echoes, urls={"booking": url}) as s:
        resp = await s.client.get("/booking", headers=bearer(mint()))
        assert resp.status_code == 502
        assert resp.json()["status"] == 502


async def test_malformed_requests_never_get_a_500(echoes) -> None:
    async with gateway_stack(echoes) as s:
        token = mint()
        cases = [
            f"POST /booking/create HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            "Content-Length: 12abc\r\n\r\n",
            "GET /events/%ZZ%00 HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /events/./x HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /booking HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\r\n\r\n",
            "GET /booking HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe.a.b\r\n\r\n",
        ]
        for case in cases:
            try:
                status, _, body = await raw_request(s.gateway, case.encode("latin-1"))
            except (ConnectionError, asyncio.IncompleteReadError):
                continue  # the HTTP server itself refused the bytes: fine, not a 500
            assert status < 500, (case, status, body)


async def test_fuzzed_requests_never_get_a_500(echoes) -> None:
    rng = random.Random(6)
    alphabet = "abc/._-~%20%2F%00%ff?&=;:@!$'()*+,ñ€"
    prefixes = [
        "/auth",
        "/events",
        "/booking",
        "/payments",
        "/notifications",
        "/analytics",
        "/",
        "/docs",
        "/asyncapi",
        "/openapi.json",
        "/ready",
        "/health",
        "/_assets",
    ]
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "FOO"]
    auths = [None, "Bearer " + mint(), "Bearer x.y.z", "Basic x", "Bearer " + "a" * 3000]
    async with gateway_stack(echoes, max_body_bytes=256) as s:
        for _ in range(150):
            path = rng.choice(prefixes) + "".join(
                rng.choice(alphabet) for _ in range(rng.randint(0, 12))
            )
            headers = {"x-user-role": "admin"}
            auth = rng.choice(auths)
            if auth:
                headers["authorization"] = auth
            body = bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 10, 300])))
            from urllib.parse import quote

            url = quote(path, safe="/%?&=;:@!$'()*+,~._-")
            resp = await s.client.request(rng.choice(methods), url, content=body, headers=headers)
            assert resp.status_code < 500, (path, resp.status_code, resp.text)
