"""The request-body cap of the auth service, the gateway's own (``MAX_BODY_BYTES``, 1 MiB): a
larger body is a 413 problem before Django sees it.

Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` alone is not enough: its ASGI handler first reads the
whole body (spooling to disk), and the cap is checked only against a declared Content-Length, so
a chunked body of any size reached the JSON parser. Here the body is read up to the cap and
handed on; Django buffers the whole body anyway, so reading it first costs nothing extra.
"""

from __future__ import annotations

import json
from typing import Any

from kit.problems import PROBLEM_JSON, problem_body


async def _refuse(scope: dict[str, Any], send: Any) -> None:
    body = json.dumps(problem_body(413, "The request body is too large.", instance=scope["path"]))
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", PROBLEM_JSON.encode()), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})


async def call_with_body_limit(
    app: Any, scope: dict[str, Any], receive: Any, send: Any, max_bytes: int
) -> None:
    """Call the ASGI ``app`` for an HTTP request, or answer 413 if its body exceeds ``max_bytes``."""
    declared = dict(scope.get("headers") or []).get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        await _refuse(scope, send)  # without reading a byte of it
        return
    messages: list[dict[str, Any]] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break  # a disconnect: let the application see it
        size += len(message.get("body", b""))
        if size > max_bytes:
            await _refuse(scope, send)
            return
        if not message.get("more_body", False):
            break

    async def replay() -> dict[str, Any]:
        return messages.pop(0) if messages else await receive()

    await app(scope, replay, send)
