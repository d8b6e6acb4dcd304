"""``GET /health`` (alive) and ``GET /ready`` (database and broker reachable), answering like
the FastAPI services' operations routes."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.db import connection
from django.http import HttpRequest, JsonResponse

from kit.problems import PROBLEM_JSON, problem_body
from auth.config.env import load
from auth.core.lifespan import RUNNING

SERVICE = "auth"


async def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok", "service": SERVICE})


def _database_ping() -> None:
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT 1")
    finally:
        connection.close()


async def _broker_ping() -> bool:
    app = RUNNING.get("app")
    if app is not None and app.relay is not None:
        return await app.relay.ready()
    # No relay in this process: can we reach the broker at all?
    url = urlsplit(load().rabbitmq_url)
    _, writer = await asyncio.open_connection(url.hostname or "127.0.0.1", url.port or 5672)
    writer.close()
    return True


async def ready(request: HttpRequest) -> JsonResponse:
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(sync_to_async(_database_ping, thread_sensitive=False)(), 2)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["database"] = f"unavailable: {type(exc).__name__}"
    try:
        ok = await asyncio.wait_for(_broker_ping(), 2)
        checks["broker"] = "ok" if ok else "unavailable"
    except Exception as exc:  # noqa: BLE001
        checks["broker"] = f"unavailable: {type(exc).__name__}"
    if all(v == "ok" for v in checks.values()):
        return JsonResponse({"status": "ready", "service": SERVICE, "checks": checks})
    body = problem_body(
        503, "Not ready: a dependency is unreachable.", code="not-ready", checks=checks
    )
    return JsonResponse(body, status=503, content_type=PROBLEM_JSON)
