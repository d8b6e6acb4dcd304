"""Flash sale with and without 1,000 open availability streams on the event, in one run.

The whole platform runs as processes (``bench/_platform.py``). Two events with the same seats;
the first is sold with nobody watching, the second with ``--streams`` Server-Sent Events streams
open on it through the gateway (``GET /booking/events/{id}/availability/stream``). For each sale:
booking attempts per second, hold and refusal percentiles; for the streamed one also how many
streams got the first event, how many got at least one update during the sale, how many ended
on the sold-out figure, and the updates received in all. Loopback only; stops by itself.

    .venv/bin/python bench/availability_streams.py [--attempts 5000] [--seats 500]
                                                  [--concurrency 200] [--users 1000]
                                                  [--streams 1000] [--open-rate 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._platform import BenchPlatform  # noqa: E402
from bench.flash_sale import PG, drive, machine_speed, ms, pct, post_event  # noqa: E402


@dataclass
class Watcher:
    """One open stream: how many ``data:`` events it got, and the last one."""

    events: int = 0
    status: int | str = "not answered"
    last: bytes = b""
    buffer: bytes = field(default=b"", repr=False)

    def feed(self, chunk: bytes) -> None:
        self.buffer = (self.buffer + chunk).replace(b"\r\n", b"\n")  # sse-starlette: CRLF
        *complete, self.buffer = self.buffer.split(b"\n\n")
        for block in complete:
            for line in block.split(b"\n"):
                if line.startswith(b"data:"):
                    self.events += 1
                    self.last = line[5:]

    def available(self) -> int | None:
        return json.loads(self.last)["available"] if self.last else None


async def watch(session: aiohttp.ClientSession, url: str, w: Watcher) -> None:
    try:
        async with session.get(url, headers={"Accept": "text/event-stream"}) as r:
            w.status = r.status
            async for chunk in r.content.iter_any():
                w.feed(chunk)
    except aiohttp.ClientError as exc:
        w.status = type(exc).__name__
    except asyncio.CancelledError:
        pass


async def new_event(session, platform: BenchPlatform, seats: int) -> str:
    status, event = await post_event(
        session, platform, title="Hot event", venue="Stadium", capacity=seats, price="50.00"
    )
    assert status == 201, event
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until booking has its inventory
        async with session.get(
            f"{platform.gateway}/booking/events/{event['id']}/availability"
        ) as r:
            await r.read()
            if r.status == 200:
                return event["id"]
        await asyncio.sleep(0.1)
    raise RuntimeError("booking never learnt of the event")


async def sale(session, platform: BenchPlatform, args, event_id: str, tokens: list[str]) -> dict:
    body = {"event_id": event_id, "quantity": 1}

    def request(i: int):
        headers = {"Authorization": f"Bearer {tokens[i % len(tokens)]}"}
        return "POST", f"{platform.gateway}/booking/create", {"json": body, "headers": headers}

    seconds, results, statuses = await drive(session, args.attempts, args.concurrency, request)
    conn = await asyncpg.connect(f"{PG}/{platform.db_prefix}booking")
    inv = await conn.fetchrow(
        "SELECT capacity, held, sold FROM inventory WHERE event_id=$1", uuid.UUID(event_id)
    )
    await conn.close()
    return dict(
        rate=args.attempts / seconds,
        seconds=seconds,
        statuses=statuses,
        held=[r[0] for r in results if r[1] == 201],
        refused=[r[0] for r in results if r[1] in (409, 422)],
        oversold=max(0, inv["held"] + inv["sold"] - inv["capacity"]),
    )


def report(name: str, s: dict) -> None:
    print(f"{name}")
    print(f"  bookings/s        {s['rate']:,.0f} attempts/s ({s['seconds']:.2f} s)")
    print(f"  statuses          {dict(s['statuses'])}; oversold {s['oversold']}")
    print(f"  holds             {ms(s['held'])}")
    print(f"  refusals          {ms(s['refused'])}")


async def main(args: argparse.Namespace) -> None:
    speed = machine_speed()
    platform = BenchPlatform()
    print(f"starting the platform (vhost {platform.vhost}) ...", flush=True)
    try:
        await platform.start()  # inside: a platform that fails to start is stopped too
        connector = aiohttp.TCPConnector(limit=args.concurrency, keepalive_timeout=3)
        streams = aiohttp.TCPConnector(limit=0)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            aiohttp.ClientSession(
                connector=streams, timeout=aiohttp.ClientTimeout(total=None)
            ) as stream_session,
        ):
            tokens = [platform.token(uuid.uuid4()) for _ in range(args.users)]
            quiet = await new_event(session, platform, args.seats)
            watched = await new_event(session, platform, args.seats)

            without = await sale(session, platform, args, quiet, tokens)

            url = f"{platform.gateway}/booking/events/{watched}/availability/stream"
            watchers = [Watcher() for _ in range(args.streams)]
            opened_at = time.perf_counter()
            tasks = []
            for k, w in enumerate(watchers):  # viewers arrive at --open-rate per second
                delay = opened_at + k / args.open_rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(watch(stream_session, url, w)))
            while sum(w.events > 0 or w.status not in (200, "not answered") for w in watchers) < (
                args.streams
            ):
                if time.perf_counter() - opened_at > 60:
                    break
                await asyncio.sleep(0.1)
            opened = sum(w.events > 0 for w in watchers)
            open_seconds = time.perf_counter() - opened_at
            before = [w.events for w in watchers]

            with_streams = await sale(session, platform, args, watched, tokens)
            await asyncio.sleep(2)  # the last change reaches every stream within a second
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await platform.stop()

    updated = sum(w.events > b for w, b in zip(watchers, before, strict=True))
    final = Counter(w.available() for w in watchers)
    answers = Counter(w.status for w in watchers)
    updates = sum(w.events - b for w, b in zip(watchers, before, strict=True))
    print()
    print(
        f"machine speed       {speed:.2f} s before, {machine_speed():.2f} s after "
        "(10M additions in a Python loop; lower is faster)"
    )
    report("without streams", without)
    report(f"with {args.streams} streams open on the event", with_streams)
    print(
        f"  streams           {opened}/{args.streams} got the first event "
        f"(all open after {open_seconds:.1f} s); {updated} got updates during the sale, "
        f"{updates:,} updates in all; last figure seen: {dict(final)}; answers {dict(answers)}"
    )
    print(
        f"ratio               {with_streams['rate'] / without['rate']:.2f} of the throughput, "
        f"hold p99 {pct(with_streams['held'], 99) * 1000:.0f} vs "
        f"{pct(without['held'], 99) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--attempts", type=int, default=5000)
    ap.add_argument("--seats", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument(
        "--open-rate", type=float, default=200, help="streams opened per second before the sale"
    )
    asyncio.run(main(ap.parse_args()))
