"""Admission control for the two routes that run Argon2: at most a few registrations and a few
logins at a time per process, each route in its own lane, waiting requests queued in the event
loop (no thread, no database connection, no memory for a hash) and shed with 503 + Retry-After
when they waited too long.

Why not a thread pool around the hash: under ASGI, Django already runs each request's sync view
on a thread of its own (asgiref's ``ThreadSensitiveContext`` per request, Django 5.2), so a
registration never queued a login behind it on one thread; the problem is the opposite. A burst
of N registrations became N threads, N database connections and N Argon2 hashes at once (each
~100 MiB with Django's parameters, and each already spreading over all cores: argon2-cffi
releases the GIL and runs its lanes in parallel), and every login then shared the CPU with all
of them: measured by bench/auth_bench.py, 50 registrations/s on 2 cores took the process to 260
threads and 4 GB, and logins to seconds. With lanes, registrations can use at most their share
of the hashing, logins keep theirs, and the rest wait cheaply or are refused quickly.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from kit.problems import PROBLEM_JSON, problem_body


class Lanes:
    """One semaphore per route (``path`` -> at most that many requests inside Django at once)."""

    def __init__(self, limits: dict[str, int], wait_seconds: float) -> None:
        self.limits = {path: n for path, n in limits.items() if n > 0}  # 0: no lane
        self.wait_seconds = wait_seconds
        self._semaphores: dict[str, asyncio.Semaphore] = {}

    async def call(self, app: Any, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if path not in self.limits:
            await app(scope, receive, send)
            return
        semaphore = self._semaphores.setdefault(path, asyncio.Semaphore(self.limits[path]))
        try:
            await asyncio.wait_for(semaphore.acquire(), self.wait_seconds)
        except TimeoutError:
            await _busy(scope, send)
            return
        try:
            await app(scope, receive, send)
        finally:
            semaphore.release()


async def _busy(scope: dict[str, Any], send: Any) -> None:
    body = problem_body(503, "The service is busy; try again shortly.", instance=scope["path"])
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [(b"content-type", PROBLEM_JSON.encode()), (b"retry-after", b"1")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})
