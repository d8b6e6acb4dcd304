"""Gateway passthrough benchmark: the same upstream called directly and through the gateway.

Starts a minimal upstream (a FastAPI ``GET /events`` answering a small JSON list, like the
events service's public read) and the real gateway (``uvicorn gateway.main:app``, rate limit
off) on loopback, then drives both with aiohttp:

* throughput: ``--concurrency`` requests in flight for ``--seconds``, direct then via gateway;
* added latency: one request at a time (no queueing), p50/p99 direct vs via gateway.

It stops by itself, and also prints the CPU time each process spends per request (robust\nagainst other load on the machine, unlike req/s). Run: ``python bench/gateway_bench.py`` (``--seconds 3`` by default; keep it
short on a shared machine). ``--gateway URL --upstream URL`` targets already-running processes.
Target: via gateway >= 50 % of direct throughput, < 2 ms added at p50.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
GATEWAY_PORT = 9600
UPSTREAM_PORT = 9601


def upstream_app():  # noqa: ANN201 - built lazily so importing this module stays cheap
    from fastapi import FastAPI

    app = FastAPI()
    items = [
        {
            "id": f"00000000-0000-0000-0000-00000000000{i}",
            "title": f"Event {i}",
            "price": "20.00",
            "currency": "EUR",
        }
        for i in range(3)
    ]

    @app.get("/events")
    async def events() -> dict:
        return {"items": items, "next_cursor": None}

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    return app


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux): a figure the machine's load hardly skews."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            *args,
            "--host",
            "127.0.0.1",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, **env},
    )


async def wait_up(session: aiohttp.ClientSession, url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with session.get(url) as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not come up")
        await asyncio.sleep(0.1)


async def drive(url: str, concurrency: int, seconds: float) -> tuple[float, list[float], int]:
    """Requests/s, per-request latencies (s) and errors for ``concurrency`` closed loops."""
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Warm up connections (and the gateway's upstream pool) before measuring.
        warm_until = time.perf_counter() + 0.3
        deadline = warm_until + seconds

        async def loop() -> None:
            nonlocal errors
            while (now := time.perf_counter()) < deadline:
                try:
                    async with session.get(url) as resp:
                        await resp.read()
                        ok = resp.status == 200
                except aiohttp.ClientError:
                    ok = False
                done = time.perf_counter()
                if now >= warm_until:
                    if ok:
                        latencies.append(done - now)
                    else:
                        errors += 1

        await asyncio.gather(*(loop() for _ in range(concurrency)))
    return len(latencies) / seconds, latencies, errors


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000
        if q < 100
        else max(values) * 1000
    )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--gateway", help="an already-running gateway (skips starting one)")
    parser.add_argument("--upstream", help="an already-running upstream serving GET /events")
    args = parser.parse_args()
    if args.seconds > 15:
        parser.error("keep it short: --seconds at most 15")

    procs: list[subprocess.Popen] = []
    upstream = args.upstream or f"http://127.0.0.1:{UPSTREAM_PORT}"
    gateway = args.gateway or f"http://127.0.0.1:{GATEWAY_PORT}"
    try:
        if not args.upstream:
            procs.append(
                start(
                    ["--factory", "bench.gateway_bench:upstream_app", "--port", str(UPSTREAM_PORT)],
                    {},
                )
            )
        if not args.gateway:
            procs.append(
                start(
                    ["gateway.main:app", "--port", str(GATEWAY_PORT), "--no-proxy-headers"],
                    {
                        "EVENTS_URL": upstream,
                        "GATEWAY_RATE_LIMIT": "0",
                        "LOG_LEVEL": "WARNING",
                        "OTEL_TRACES_EXPORTER": "none",
                    },
                )
            )
        async with aiohttp.ClientSession() as s:
            await wait_up(s, upstream + "/health")
            await wait_up(s, gateway + "/health")

        pids = {
            "upstream": procs[0].pid if not args.upstream else None,
            "gateway": procs[-1].pid if not args.gateway else None,
        }
        rows: dict[str, tuple] = {}
        cpu: dict[str, dict[str, float]] = {"direct": {}, "gateway": {}}
        # Two alternating rounds, best of each: other work on a shared machine comes and goes.
        for _round in range(2):
            for name, base in (("direct", upstream), ("gateway", gateway)):
                before = {k: cpu_seconds(p) for k, p in pids.items() if p}
                rps, lat, err = await drive(base + "/events", args.concurrency, args.seconds)
                served = len(lat) + err
                for k, p in pids.items():
                    if p and served:
                        used = 1e6 * (cpu_seconds(p) - before[k]) / served
                        cpu[name][k] = min(cpu[name].get(k, used), used)
                _, lat1, err1 = await drive(base + "/events", 1, max(1.0, args.seconds / 2))
                row = (rps, pct(lat, 50), pct(lat, 99), pct(lat1, 50), pct(lat1, 99), err + err1)
                if name not in rows or row[0] > rows[name][0]:
                    rows[name] = row

        print(
            f"\nGET /events, loopback, {args.concurrency} in flight for {args.seconds:g}s "
            f"(then 1 in flight for latency); best of 2 alternating rounds"
        )
        print(
            f"{'':8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} | {'c=1 p50':>8} {'c=1 p99':>8} "
            f"{'errors':>6}"
        )
        for name, (rps, p50, p99, s50, s99, err) in rows.items():
            print(f"{name:8} {rps:9.0f} {p50:8.2f} {p99:8.2f} | {s50:8.2f} {s99:8.2f} {err:6d}")
        d, g = rows["direct"], rows["gateway"]
        ratio = g[0] / d[0] if d[0] else float("nan")
        added50, added99 = g[3] - d[3], g[4] - d[4]
        print(
            f"\nthrough the gateway: {ratio:.0%} of direct throughput "
            f"(target >= 50%); added latency p50 {added50:.2f} ms (target < 2 ms), "
            f"p99 {added99:.2f} ms"
        )
        if cpu["gateway"].get("gateway"):
            print(
                f"CPU per request: gateway {cpu['gateway']['gateway']:.0f} us, "
                f"service {cpu['direct'].get('upstream', float('nan')):.0f} us "
                f"(load on a shared machine skews req/s far more than these)"
            )
        return 0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
