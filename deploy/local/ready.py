"""Waits until every process of `make run` answers /ready, then says where everything is."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import aiohttp

GATEWAY = f"http://127.0.0.1:{os.getenv('GATEWAY_PORT', '8000')}"
SERVICES = {
    "auth": "http://127.0.0.1:8001",
    "events": "http://127.0.0.1:8002",
    "booking": "http://127.0.0.1:8003",
    "payments": "http://127.0.0.1:8004",
    "notifications": "http://127.0.0.1:8005",
    "analytics": "http://127.0.0.1:8006",
    "gateway": GATEWAY,
}


def summary(
    gateway: str, smtp_port: int, *, mail_dir: str = ".var/mail", embedded: bool = False
) -> str:
    """Where everything is (also printed by the embedded mode, deploy/local/embedded.py)."""
    mode = " in EMBEDDED MODE (one process, not durable)" if embedded else ""
    return (
        "\n"
        f"  Event Booking Platform is up{mode}.\n"
        f"  Gateway (the only entry point) {gateway}\n"
        f"  API docs                        {gateway}/docs\n"
        f"  AsyncAPI docs                   {gateway}/asyncapi\n"
        f"  Local mail sink                 {mail_dir}/ (SMTP on 127.0.0.1:{smtp_port})\n"
        "  Metrics                         http://127.0.0.1:800N/metrics per service\n"
        "  Stop everything with Ctrl-C.\n"
    )


async def ready(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(f"{url}/ready", timeout=aiohttp.ClientTimeout(total=2)) as r:
            return r.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def main(timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    pending = dict(SERVICES)
    async with aiohttp.ClientSession() as session:
        while pending and time.monotonic() < deadline:
            results = await asyncio.gather(*(ready(session, u) for u in pending.values()))
            for name, ok in zip(list(pending), results, strict=True):
                if ok:
                    print(f"ready: {name}", flush=True)
                    pending.pop(name)
            if pending:
                await asyncio.sleep(0.5)
    if pending:
        print(
            f"NOT READY after {timeout:.0f}s: {', '.join(pending)} (see their logs above)",
            flush=True,
        )
        return 1
    print(summary(GATEWAY, int(os.getenv("SMTP_PORT", "1025"))), flush=True)
    await asyncio.Event().wait()  # stay up so honcho keeps the others running
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
