"""Small helpers shared by the auth tests."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from asgiref.sync import sync_to_async

STRONG_PASSWORD = "violet-otter-harbour-42"


def new_email(prefix: str = "user") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}@example.com"


async def register(client: Any, **over: Any) -> dict[str, Any]:
    body = {"email": new_email(), "password": STRONG_PASSWORD, "full_name": "Ada Lovelace", **over}
    resp = await client.post("/auth/register", json=body)
    assert resp.status_code == 201, resp.text
    return {**resp.json(), "password": body["password"]}


async def login(client: Any, email: str, password: str = STRONG_PASSWORD, **kw: Any) -> Any:
    return await client.post("/auth/login", json={"email": email, "password": password}, **kw)


async def tokens_for(client: Any, **register_over: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    user = await register(client, **register_over)
    resp = await login(client, user["email"])
    assert resp.status_code == 200, resp.text
    return user, resp.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(obj: dict[str, Any]) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    h, p, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(h))),
        json.loads(base64.urlsafe_b64decode(pad(p))),
    )


def assert_problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.headers
    body = resp.json()
    assert body["status"] == status and body["title"] and body["type"].startswith("https://")
    return body


@sync_to_async
def db_rows(sql: str, *params: Any) -> list[tuple[Any, ...]]:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []
