"""Reading Server-Sent Events in tests: the next ``data:`` event of a streaming response."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp


async def next_data(resp: aiohttp.ClientResponse, timeout: float = 5.0) -> dict[str, Any]:
    """The next ``data:`` event of an SSE response, parsed (keep-alive comments skipped); an
    EOFError if the stream ends first, a TimeoutError if nothing comes within ``timeout``."""

    async def read() -> dict[str, Any]:
        data: list[str] = []
        while True:
            line = (await resp.content.readline()).decode()
            if not line:
                raise EOFError("the stream ended")
            line = line.rstrip("\r\n")
            if line.startswith("data:"):
                data.append(line[5:].strip())
            elif not line and data:
                return json.loads("\n".join(data))

    return await asyncio.wait_for(read(), timeout)
