"""A webhook receiver for the tests: a tiny HTTP server on a free port that records every
request and answers as told per path (``ok``, ``fail-then-ok``, ``fail``, ``hang``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.notifications.helpers import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: str


@dataclass
class Receiver:
    port: int = field(default_factory=free_port)
    requests: list[Received] = field(default_factory=list)
    failures_left: dict[str, int] = field(default_factory=dict)
    runner: Any = None

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path.strip("/")
        self.requests.append(Received(path, dict(request.headers), await request.text()))
        if path.startswith("hang"):
            await asyncio.sleep(3600)
        if path.startswith("fail"):
            left = self.failures_left.get(path, 1_000_000)
            if left > 0:
                self.failures_left[path] = left - 1
                return web.Response(status=500, text="boom")
        return web.Response(status=204)

    def to(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def at(self, path: str) -> list[Received]:  # a probe for `eventually`
        return self.to(path)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        await self.runner.cleanup()
