"""Stand-in upstreams and a real gateway, both served by uvicorn on free loopback ports.

The gateway under test is the real app (``gateway.app.create_app``) behind a real HTTP server;
the services behind it are small recording ASGI apps (``EchoUpstream``) or the real events
service, so every assertion is about what actually crossed the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.routing import ROUTES
from tests.support.serving import serve as serve

SERVICES = [name for name, _, _ in ROUTES]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Seen:
    method: str
    path: str
    raw_path: bytes
    query: bytes
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]


@dataclass
class EchoUpstream:
    """A recording service stand-in. It answers:

    * ``/auth/jwks.json`` with ``jwks`` when set;
    * ``/ready`` with ``ready_status`` (and ``ready_body`` when set); ``/openapi.json`` with ``openapi`` (404 if None);
      ``/asyncapi`` and ``/asyncapi.json`` with a tiny document;
    * paths containing ``/slow`` after ``slow_seconds``; ``/stream`` as three chunks without a
      Content-Length; ``/big`` with 200 KiB;
    * anything else with a JSON echo of the request, status from the ``x-echo-status`` request
      header, and headers a faithful proxy must pass (two Set-Cookie) or drop (hop-by-hop).
    """

    name: str
    ready_status: int = 200
    ready_body: dict[str, Any] | None = None
    openapi: dict[str, Any] | None = None
    slow_seconds: float = 3.0
    jwks: dict[str, Any] | None = None
    requests: list[Seen] = field(default_factory=list)
    jwks_fetches: int = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        if path == "/ready":
            await self._json(
                send,
                self.ready_status,
                self.ready_body or {"status": "ready" if self.ready_status == 200 else "not ready"},
            )
            return
        if path == "/openapi.json":
            if self.openapi is None:
                await self._json(send, 404, {"detail": "Not Found"})
            else:
                await self._json(send, 200, self.openapi)
            return
        if path == "/auth/jwks.json" and self.jwks is not None:
            self.jwks_fetches += 1
            await self._json(send, 200, self.jwks)
            return
        if path == "/asyncapi.json":
            await self._json(send, 200, {"asyncapi": "2.6.0", "info": {"title": self.name}})
            return
        if path == "/asyncapi":
            await self._raw(
                send,
                200,
                b"<html>" + self.name.encode() + b" asyncapi</html>",
                [(b"content-type", b"text/html; charset=utf-8")],
            )
            return
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        self.requests.append(
            Seen(
                scope["method"],
                path,
                scope.get("raw_path") or b"",
                scope["query_string"],
                headers,
                body,
            )
        )
        if "/slow" in path:
            await asyncio.sleep(self.slow_seconds)
        if "/stream" in path:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/plain")],
                }
            )
            for i in range(3):
                await send(
                    {"type": "http.response.body", "body": f"chunk{i};".encode(), "more_body": True}
                )
            await send({"type": "http.response.body", "body": b""})
            return
        if "/big" in path:
            await self._raw(
                send, 200, b"x" * 200 * 1024, [(b"content-type", b"application/octet-stream")]
            )
            return
        status = int(dict(headers).get("x-echo-status", "200"))
        payload = {
            "service": self.name,
            "method": scope["method"],
            "path": path,
            "query": scope["query_string"].decode(),
            "body": body.decode("latin-1"),
        }
        await self._raw(
            send,
            status,
            json.dumps(payload).encode(),
            [
                (b"content-type", b"application/json"),
                (b"x-upstream", self.name.encode()),
                (b"set-cookie", b"a=1; Path=/"),
                (b"set-cookie", b"b=2; Path=/"),
                (b"keep-alive", b"timeout=5"),
                (b"connection", b"x-hop-secret"),
                (b"x-hop-secret", b"should-not-pass"),
                (b"x-trace-id", b"upstream-should-not-duplicate"),
            ],
        )

    async def _json(self, send: Any, status: int, payload: Any) -> None:
        await self._raw(
            send, status, json.dumps(payload).encode(), [(b"content-type", b"application/json")]
        )

    @staticmethod
    async def _raw(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        if status in (204, 304):
            body = b""
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


@dataclass
class Stack:
    gateway: str
    client: httpx.AsyncClient
    upstreams: dict[str, EchoUpstream]
    urls: dict[str, str]

    def seen(self) -> dict[str, int]:
        return {name: len(u.requests) for name, u in self.upstreams.items()}

    async def seen_by_booking(self, headers: dict[str, str]) -> Seen:
        """What the booking stand-in received of a ``GET /booking/b-1`` sent with ``headers``
        (the gateway having answered it 200)."""
        resp = await self.client.get("/booking/b-1", headers=headers)
        assert resp.status_code == 200, resp.text
        return self.upstreams["booking"].requests[0]


@pytest.fixture(scope="session")
async def echoes() -> AsyncIterator[dict[str, tuple[EchoUpstream, str]]]:
    """One recording stand-in per service for the whole run (reset by each ``gateway_stack``)."""
    async with contextlib.AsyncExitStack() as stack:
        running = {}
        for name in SERVICES:
            echo = EchoUpstream(name)
            running[name] = (echo, await stack.enter_async_context(serve(echo, lifespan="off")))
        yield running


@contextlib.asynccontextmanager
async def gateway_stack(
    echoes: dict[str, tuple[EchoUpstream, str]],
    *,
    dead: tuple[str, ...] = (),
    urls: dict[str, str] | None = None,
    behind_balancer: bool = False,
    **settings: Any,
) -> AsyncIterator[Stack]:
    """A real gateway in front of the echo upstreams (or a dead port for the names in ``dead``,
    or the given ``urls``); ``settings`` override GatewaySettings fields.

    ``behind_balancer`` runs it as `python -m gateway` does with ``FORWARDED_ALLOW_IPS`` set to
    the test client's address (127.0.0.1): the server believes that peer's ``X-Forwarded-For``,
    so a test can stand for clients at any address, IPv6 ones included."""
    addresses: dict[str, str] = {}
    for name, (echo, url) in echoes.items():
        echo.requests.clear()
        echo.ready_status, echo.ready_body, echo.openapi, echo.slow_seconds = 200, None, None, 3.0
        echo.jwks, echo.jwks_fetches = None, 0
        if urls and name in urls:
            addresses[name] = urls[name]
        elif name in dead:
            addresses[name] = f"http://127.0.0.1:{free_port()}"
        else:
            addresses[name] = url
    overrides = {"gateway_rate_limit": 0, "upstream_timeout_seconds": 5.0, **settings}
    config = GatewaySettings(**{f"{n}_url": u for n, u in addresses.items()}, **overrides)
    # As `python -m gateway` runs it: by default the edge trusts no X-Forwarded-* from its peer.
    async with (
        serve(create_app(config), proxy_headers=behind_balancer) as gateway,
        httpx.AsyncClient(base_url=gateway, timeout=10) as client,
    ):
        yield Stack(gateway, client, {n: e for n, (e, _) in echoes.items()}, addresses)


@pytest.fixture
async def stack(echoes: dict[str, tuple[EchoUpstream, str]]) -> AsyncIterator[Stack]:
    async with gateway_stack(echoes) as s:
        yield s
