"""Logins while registrations arrive: does Argon2 hashing of a registration burst hold logins up?

Starts ONE auth process (uvicorn, loopback only, its own database dropped afterwards, no broker:
``OUTBOX_RELAY=false``, registration limits off) and measures, open loop (requests leave at a
fixed rate whatever the answers do):

1. logins alone, ``--login-rate`` per second for ``--seconds``;
2. the same logins while ``--register-rate`` registrations per second arrive.

Prints p50/p99 of the logins in both phases, of the registrations, the error counts (a 503 from
admission control counts as an error) and the auth process's peak thread count and peak memory
(each in-flight Argon2 hash holds ~100 MiB). ``--unbounded`` sets REGISTER_CONCURRENCY and
LOGIN_CONCURRENCY to 0: the behaviour before auth.core.admission, for comparison.
Bounded: at most rate x seconds requests per phase, each with a 30 s timeout.

    .venv/bin/python bench/auth_bench.py [--seconds 10] [--login-rate 10] [--register-rate 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._platform import ROOT, free_port  # noqa: E402

PASSWORD = "violet-otter-harbour-42"


def proc_status(pid: int) -> tuple[int, int]:
    """(threads, peak resident MiB) of a process."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["Threads"]), int(fields["VmHWM"].split()[0]) // 1024


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))] * 1000


async def open_loop(rate: float, seconds: float, call) -> tuple[list[float], int]:
    """Fire ``call()`` ``rate`` times a second for ``seconds``; latencies of the successes."""
    latencies: list[float] = []
    errors = 0

    async def one() -> None:
        nonlocal errors
        start = time.perf_counter()
        try:
            ok = await call()
        except (aiohttp.ClientError, asyncio.TimeoutError):
            ok = False
        if ok:
            latencies.append(time.perf_counter() - start)
        else:
            errors += 1

    tasks = []
    t0 = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    return latencies, errors


async def run(args: argparse.Namespace, base: str, pid: int) -> None:
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(base, timeout=timeout) as http:
        emails = [f"bench.{uuid.uuid4().hex[:8]}@example.com" for _ in range(20)]
        for email in emails:
            body = {"email": email, "password": PASSWORD}
            async with http.post("/auth/register", json=body) as r:
                assert r.status == 201, await r.text()
        counter = iter(range(10**9))

        def client_address() -> dict[str, str]:
            # Each request from its own address (the process trusts 127.0.0.1 as its proxy), so
            # the login throttle's per-address and per-pair budgets never count in-flight logins.
            n = next(counter)
            return {"X-Forwarded-For": f"198.18.{n // 250 % 250}.{n % 250 + 1}"}

        async def login() -> bool:
            body = {"email": emails[next(counter) % len(emails)], "password": PASSWORD}
            async with http.post("/auth/login", json=body, headers=client_address()) as r:
                await r.read()
                return r.status == 200

        async def register() -> bool:
            body = {"email": f"b.{uuid.uuid4().hex}@example.com", "password": PASSWORD}
            async with http.post("/auth/register", json=body, headers=client_address()) as r:
                await r.read()
                return r.status == 201

        peak = [0, 0]

        async def sample() -> None:
            while True:
                threads, mib = proc_status(pid)
                peak[0], peak[1] = max(peak[0], threads), max(peak[1], mib)
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample())
        for _ in range(int(args.login_rate)):  # warm-up: connections, code paths
            await login()
        alone, alone_err = await open_loop(args.login_rate, args.seconds, login)
        (mixed, mixed_err), (regs, regs_err) = await asyncio.gather(
            open_loop(args.login_rate, args.seconds, login),
            open_loop(args.register_rate, args.seconds, register),
        )
        sampler.cancel()

    def line(name: str, lat: list[float], errors: int) -> str:
        return (
            f"{name:<44} n={len(lat):>4}  p50={pct(lat, 0.5):7.1f} ms  "
            f"p99={pct(lat, 0.99):7.1f} ms  max={pct(lat, 1.0):7.1f} ms  errors={errors}"
        )

    print(
        f"auth_bench{' --unbounded' if args.unbounded else ''}: {args.seconds:g} s per phase, logins {args.login_rate:g}/s, "
        f"registrations {args.register_rate:g}/s, {os.cpu_count()} CPUs"
    )
    print(line("logins alone", alone, alone_err))
    print(line(f"logins with {args.register_rate:g} registrations/s", mixed, mixed_err))
    print(line("registrations", regs, regs_err))
    print(
        f"auth process peak: {peak[0]} threads, {peak[1]} MiB resident "
        f"(mean login {statistics.fmean(alone or [0]) * 1000:.1f} ms alone)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--login-rate", type=float, default=10)
    parser.add_argument("--register-rate", type=float, default=50)
    parser.add_argument("--unbounded", action="store_true", help="no admission lanes")
    args = parser.parse_args()

    prefix = f"bench_{uuid.uuid4().hex[:8]}_"
    port = free_port()
    keys = tempfile.mkdtemp(prefix="auth_bench_keys_")
    env = {
        **os.environ,
        "DATABASE_PREFIX": prefix,
        "ENVIRONMENT": "development",
        "JWT_KEYS_DIR": keys,
        "OUTBOX_RELAY": "false",
        "LOG_LEVEL": "WARNING",
        "REGISTRATIONS_PER_ADDRESS_PER_HOUR": "0",
        "REGISTRATIONS_PER_MINUTE": "0",
    }
    if args.unbounded:
        env.update(REGISTER_CONCURRENCY="0", LOGIN_CONCURRENCY="0")
    env.pop("JWT_PRIVATE_KEY", None)
    env.pop("JWT_PRIVATE_KEY_FILE", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "auth.config.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"auth did not start:\n{proc.stderr.read().decode()[-3000:]}")
            with contextlib.suppress(OSError):
                import urllib.request

                with urllib.request.urlopen(f"{base}/health", timeout=1):  # noqa: S310
                    break
            if time.monotonic() > deadline:
                raise SystemExit("auth did not answer /health within 60 s")
            time.sleep(0.2)
        asyncio.run(run(args, base, proc.pid))
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
        if proc.poll() is None:
            proc.kill()
        with psycopg.connect(host="127.0.0.1", user="postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{prefix}auth" WITH (FORCE)')


if __name__ == "__main__":
    main()
