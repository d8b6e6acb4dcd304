"""Flash sale of a hot event, through the gateway, with the whole platform running as processes.

One event with 1,000 seats; 10,000 booking attempts from many users at high concurrency; then
payments for the held bookings, paced; then the same booking load against a bare baseline (one
FastAPI process doing only the conditional seat update on the same PostgreSQL). Prints
bookings/s, latency percentiles, sold and oversold counts, payment → confirmed latency, peak
memory and the ratio to the baseline. Loopback only; stops by itself.

    .venv/bin/python bench/flash_sale.py [--attempts 10000] [--seats 1000] [--concurrency 200]
                                         [--users 1000] [--pay-rate 100] [--gateway-workers 1]
                                         [--steady-rate 100] [--steady-seconds 10] [--think 1]
"""

from __future__ import annotations

import argparse
import random
import asyncio
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._platform import BenchPlatform, free_port  # noqa: E402

PG = "postgresql://postgres@127.0.0.1:5432"


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def ms(values: list[float]) -> str:
    return "p50 {:.1f} ms, p95 {:.1f} ms, p99 {:.1f} ms".format(
        *(pct(values, p) * 1000 for p in (50, 95, 99))
    )


async def drive(session, n: int, concurrency: int, make_request) -> tuple[float, list, Counter]:
    """n requests, `concurrency` in flight; returns (seconds, [(latency, status, body, i,
    sent)], statuses), ``sent`` in seconds from the start."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    results: list = []

    async def worker() -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            method, url, kw = make_request(i)
            t0 = time.perf_counter()
            try:
                async with session.request(method, url, **kw) as r:
                    body = await r.json(content_type=None)
                    results.append((time.perf_counter() - t0, r.status, body, i, t0 - start))
            except (aiohttp.ClientError, TimeoutError) as exc:
                results.append((time.perf_counter() - t0, 0, repr(exc), i, t0 - start))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, results, Counter(r[1] for r in results)


def cpu_now(platform: BenchPlatform) -> tuple[dict, dict]:
    return platform.cpu_seconds(), platform.infrastructure_cpu_seconds()


def cpu_since(platform: BenchPlatform, before: tuple[dict, dict]) -> dict:
    """CPU seconds per platform process and per infrastructure process since ``before``
    (``cpu_now``)."""
    cpu0, infra0 = before
    cpu1, infra1 = cpu_now(platform)
    return dict(
        cpu={k: cpu1.get(k, 0) - cpu0.get(k, 0) for k in cpu1},
        infra={k: infra1[k] - infra0[k] for k in infra1},
    )


async def post_event(session, platform: BenchPlatform, **fields) -> tuple[int, dict]:
    """An event in EUR, 30 days ahead, created through the gateway by a new organizer with
    ``fields`` (title, venue, capacity, price or ticket_types): the answer's status and body."""
    organizer = platform.token(uuid.uuid4(), "organizer")
    async with session.post(
        f"{platform.gateway}/events/create",
        headers={"Authorization": f"Bearer {organizer}"},
        json={
            "currency": "EUR",
            "starts_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
            **fields,
        },
    ) as r:
        return r.status, await r.json()


async def confirmations(
    platform: BenchPlatform, event_id: str, sent: dict[str, float], expected: int, wait: float
) -> tuple[int, list[float]]:
    """Wait up to ``wait`` s for ``expected`` confirmed bookings of the event; then how many are
    confirmed and, for each paid one in ``sent``, seconds from its accepted payment request to
    its confirmation (the booking's ``updated_at``)."""
    conn = await asyncpg.connect(f"{PG}/{platform.db_prefix}booking")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        n = await conn.fetchval(
            "SELECT count(*) FROM bookings WHERE event_id=$1 AND status='confirmed'",
            uuid.UUID(event_id),
        )
        if n >= expected:
            break
        await asyncio.sleep(0.2)
    rows = await conn.fetch(
        "SELECT id, updated_at FROM bookings WHERE event_id=$1 AND status='confirmed'",
        uuid.UUID(event_id),
    )
    await conn.close()
    latency = [
        max(0.0, r["updated_at"].timestamp() - sent[str(r["id"])])
        for r in rows
        if str(r["id"]) in sent
    ]
    return len(rows), latency


async def flash_sale(args: argparse.Namespace) -> dict:
    platform = BenchPlatform(
        gateway_workers=args.gateway_workers, booking_workers=args.booking_workers
    )
    print(f"starting the platform (vhost {platform.vhost}) ...", flush=True)
    await platform.start()
    peak_rss = platform.rss_bytes()
    sampling = True

    async def sample_memory() -> None:
        nonlocal peak_rss
        while sampling:
            peak_rss = max(peak_rss, platform.rss_bytes())
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample_memory())
    out: dict = {}
    try:
        # idle connections closed before uvicorn's 5 s keep-alive would close them under us
        connector = aiohttp.TCPConnector(limit=args.concurrency, keepalive_timeout=3)
        async with aiohttp.ClientSession(connector=connector) as session:
            gw = platform.gateway
            status, event = await post_event(
                session,
                platform,
                title="Hot event",
                venue="Stadium",
                capacity=args.seats,
                # with types the event's price is their lowest: events refuses both
                **(
                    {"ticket_types": mixed_types(args.seats)}
                    if args.mixed_types
                    else {"price": "50.00"}
                ),
            )
            assert status == 201, event
            # wait until booking has the event's inventory (eventual consistency)
            probe = platform.token(uuid.uuid4())
            deadline = time.monotonic() + 30
            while True:
                async with session.get(
                    f"{gw}/booking", headers={"Authorization": f"Bearer {probe}"}
                ) as r:
                    await r.read()
                conn = await asyncpg.connect(f"{PG}/{platform.db_prefix}booking")
                known = await conn.fetchval(
                    "SELECT count(*) FROM inventory WHERE event_id=$1", uuid.UUID(event["id"])
                )
                await conn.close()
                if known or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)

            users = [uuid.uuid4() for _ in range(args.users)]
            tokens = {u: platform.token(u) for u in users}
            body = {"event_id": event["id"], "quantity": 1}
            type_ids = [t["id"] for t in event.get("ticket_types", [])]
            orders = random.Random(1)

            def booking_request(i: int):
                user = users[i % len(users)]
                json_body = body
                if args.mixed_types:  # 1-3 lines of distinct types, 1 seat each
                    chosen = orders.sample(type_ids, orders.randint(1, 3))
                    json_body = {
                        "event_id": event["id"],
                        "lines": [{"ticket_type_id": t, "quantity": 1} for t in chosen],
                    }
                return (
                    "POST",
                    f"{gw}/booking/create",
                    {"json": json_body, "headers": {"Authorization": f"Bearer {tokens[user]}"}},
                )

            cpu0 = cpu_now(platform)
            seconds, results, statuses = await drive(
                session, args.attempts, args.concurrency, booking_request
            )
            used = cpu_since(platform, cpu0)
            lat = [r[0] for r in results]
            if args.dump:  # sent (s from the start), latency (s), status: one attempt a line
                Path(args.dump).write_text(
                    "".join(
                        f"{r[4]:.4f} {r[0]:.4f} {r[1]}\n"
                        for r in sorted(results, key=lambda r: r[4])
                    )
                )
            out["lat_held"] = [r[0] for r in results if r[1] == 201]
            out["lat_refused"] = [r[0] for r in results if r[1] in (409, 422)]
            held = [(users[r[3] % len(users)], r[2]) for r in results if r[1] == 201]
            out["booking"] = dict(
                seconds=seconds,
                rate=args.attempts / seconds,
                lat=lat,
                statuses=statuses,
                **used,
            )

            conn = await asyncpg.connect(f"{PG}/{platform.db_prefix}booking")
            inv = await conn.fetchrow(
                "SELECT capacity, held, sold FROM inventory WHERE event_id=$1",
                uuid.UUID(event["id"]),
            )
            live = await conn.fetchval(
                "SELECT coalesce(sum(quantity),0) FROM bookings WHERE event_id=$1 AND status IN ('pending','confirmed')",
                uuid.UUID(event["id"]),
            )
            # per type: seats out beyond the type's own capacity, by its counters or its lines
            out["types"] = [
                dict(r)
                for r in await conn.fetch(
                    """
                SELECT t.name, t.capacity, t.held, t.sold,
                       coalesce((SELECT sum(l.quantity) FROM booking_lines l
                                 JOIN bookings b ON b.id = l.booking_id
                                 WHERE l.ticket_type_id = t.ticket_type_id
                                   AND b.status IN ('pending', 'confirmed')), 0) AS live
                FROM type_inventory t WHERE t.event_id = $1 ORDER BY t.position
                """,
                    uuid.UUID(event["id"]),
                )
            ]
            await conn.close()
            out["inventory"] = dict(inv)
            out["sold"] = len(held)
            out["oversold"] = max(0, live - args.seats, inv["held"] + inv["sold"] - inv["capacity"])

            # payments for the held bookings, paced at --pay-rate per second
            pay_sent: dict[str, float] = {}
            interval = 1 / args.pay_rate
            pay_statuses: Counter = Counter()

            async def pay(user: uuid.UUID, booking: dict) -> None:
                status = await pay_once(session, gw, tokens[user], booking["id"], pay_sent)
                pay_statuses[status] += 1

            pay_tasks = []
            t_pay = time.perf_counter()
            for k, (user, booking) in enumerate(held):
                delay = t_pay + k * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                pay_tasks.append(asyncio.create_task(pay(user, booking)))
            await asyncio.gather(*pay_tasks)

            accepted = sum(pay_statuses[k] for k in (200, 201))
            confirmed, confirm = await confirmations(platform, event["id"], pay_sent, accepted, 60)
            out["payments"] = dict(statuses=pay_statuses, confirmed=confirmed, latency=confirm)

            # the steady state: a second event sold at --steady-rate bookings/s, each paid
            # --think seconds after its hold, once the platform has drained the sale's backlog
            out["drained"] = await platform.drain()
            out["steady"] = await steady(session, platform, args, tokens, users)
    finally:
        sampling = False
        await sampler
        out["peak_rss"] = peak_rss
        await platform.stop()
    return out


async def pay_once(session, gw: str, token: str, booking_id: str, sent: dict[str, float]) -> int:
    """Pay for a booking; payments may not know it for a moment (404): retry with back-off
    (0.1 s doubling to 1 s, as a polite client would) for up to ~30 s. Records in ``sent``
    when the accepted payment request was sent. Returns the last status."""
    status, pause = 0, 0.1
    for _ in range(40):
        t0 = time.time()
        try:
            async with session.post(
                f"{gw}/payments/process",
                headers={"Authorization": f"Bearer {token}"},
                json={
                    "booking_id": booking_id,
                    "payment_method": {"type": "card", "token": "tok_visa"},
                },
            ) as r:
                await r.read()
                status = r.status
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        if status in (200, 201):
            sent[booking_id] = t0
            return status
        if status not in (404, 0):
            return status
        RETRIES[status] += 1
        await asyncio.sleep(pause)
        pause = min(pause * 2, 1.0)
    return status


RETRIES: Counter = Counter()  # payment attempts retried, by status (404: not known yet, 0: error)


async def steady(
    session, platform: BenchPlatform, args: argparse.Namespace, tokens: dict, users: list
) -> dict:
    """``--steady-rate`` holds per second for ``--steady-seconds`` on a fresh event, each paid
    ``--think`` seconds later; payment -> confirmed measured from the accepted payment request."""
    gw = platform.gateway
    n = int(args.steady_rate * args.steady_seconds)
    _, event = await post_event(
        session, platform, title="Steady event", venue="Club", capacity=n, price="20.00"
    )
    await asyncio.sleep(1)  # booking learns the event
    sent: dict[str, float] = {}
    statuses: Counter = Counter()
    book_lat: list[float] = []

    # each hold by a new user, with the token minted beforehand (as auth would have at login):
    # RS256 signing in the load generator would otherwise take CPU from the platform under test
    customers = [uuid.uuid4() for _ in range(n)]
    users_tokens = [platform.token(user) for user in customers]
    # registered as auth would announce them, so each confirmation is really e-mailed (with its
    # ticket's QR code) to the mail server; learnt before the clock starts
    await platform.announce_users(customers)
    await platform.drain()

    async def one(k: int) -> None:
        token = users_tokens[k]
        t0 = time.perf_counter()
        try:
            async with session.post(
                f"{gw}/booking/create",
                headers={"Authorization": f"Bearer {token}"},
                json={"event_id": event["id"], "quantity": 1},
            ) as r:
                body = await r.json(content_type=None)
                statuses[f"hold {r.status}"] += 1
                if r.status != 201:
                    return
        except (aiohttp.ClientError, TimeoutError):
            statuses["hold error"] += 1
            return
        book_lat.append(time.perf_counter() - t0)
        await asyncio.sleep(args.think)
        statuses[f"pay {await pay_once(session, gw, token, body['id'], sent)}"] += 1

    tasks = []
    cpu0 = cpu_now(platform)
    start = time.perf_counter()
    for k in range(n):
        delay = start + k / args.steady_rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(k)))
    await asyncio.gather(*tasks)
    await platform.drain()  # (rabbitmqctl's own CPU is not counted: it has exited by the end)
    used = cpu_since(platform, cpu0)
    confirmed, latency = await confirmations(platform, event["id"], sent, len(sent), 30)
    return dict(
        n=n,
        statuses=statuses,
        confirmed=confirmed,
        paid=len(sent),
        latency=latency,
        hold=book_lat,
        **used,
    )


async def baseline(args: argparse.Namespace) -> tuple[float, list[float], list[float]]:
    """Attempts/s on the bare baseline, and the latencies of its holds and of its refusals."""
    db = f"bench_baseline_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(f"{PG}/postgres")
    await admin.execute(f'CREATE DATABASE "{db}"')
    conn = await asyncpg.connect(f"{PG}/{db}")
    event_id = uuid.uuid4()
    await conn.execute(
        "CREATE TABLE seats (event_id uuid PRIMARY KEY, capacity int NOT NULL, held int NOT NULL DEFAULT 0)"
    )
    await conn.execute("INSERT INTO seats VALUES ($1, $2, 0)", event_id, args.seats)
    await conn.close()
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.baseline_app:app",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=Path(__file__).resolve().parents[1],
        env={**__import__("os").environ, "BASELINE_DSN": f"{PG}/{db}"},
    )
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=args.concurrency)
        ) as session:
            for _ in range(100):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/docs") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            seconds, results, statuses = await drive(
                session,
                args.attempts,
                args.concurrency,
                lambda i: (
                    "POST",
                    f"http://127.0.0.1:{port}/reserve",
                    {"json": {"event_id": str(event_id), "quantity": 1}},
                ),
            )
        assert statuses[201] == args.seats, statuses
        held = [r[0] for r in results if r[1] == 201]
        refused = [r[0] for r in results if r[1] == 409]
        return args.attempts / seconds, held, refused
    finally:
        proc.terminate()
        proc.wait(10)
        await admin.execute(f'DROP DATABASE "{db}" WITH (FORCE)')
        await admin.close()


def mixed_types(seats: int) -> list[dict]:
    """--mixed-types: three types drawing from the event's seats, two with their own cap."""
    return [
        {"name": "Early bird", "price": "30.00", "capacity": max(1, seats // 5)},
        {"name": "Regular", "price": "50.00"},
        {"name": "VIP", "price": "120.00", "capacity": max(1, seats // 10), "max_per_order": 2},
    ]


def machine_speed() -> float:
    """Seconds a fixed pure-Python loop takes now: the machine's speed varies from day to day
    (and hour to hour on shared hosts); figures from runs far apart compare only with this."""
    t0 = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    return time.perf_counter() - t0


async def main(args: argparse.Namespace) -> None:
    speed = machine_speed()
    result = await flash_sale(args)
    base, base_held, base_refused = await baseline(args)
    b = result["booking"]
    print("\n=== flash sale through the gateway ===")
    print(
        f"machine speed       {speed:.2f} s for 10M additions in a Python loop (before the run), "
        f"{machine_speed():.2f} s after"
    )
    print(
        f"attempts            {args.attempts} at concurrency {args.concurrency} from {args.users} users "
        f"on {args.seats} seats (gateway workers: {args.gateway_workers}, booking workers: {args.booking_workers})"
    )
    print(f"bookings/s          {b['rate']:,.0f} attempts/s ({b['seconds']:.2f} s)")
    print(f"latency             {ms(b['lat'])}")
    print(f"responses           {dict(b['statuses'])}")
    print(f"sold                {result['sold']} (inventory {result['inventory']})")
    print(f"oversold            {result['oversold']} (the event's quota)")
    for t in result["types"]:
        over = (
            0
            if t["capacity"] is None
            else max(0, t["held"] + t["sold"] - t["capacity"], t["live"] - t["capacity"])
        )
        print(
            f"  type {t['name']:<14} capacity {t['capacity']}, held {t['held']}, sold "
            f"{t['sold']}, live lines {t['live']}: oversold {over}"
        )
    print(f"held latency        {ms(result['lat_held'])} ({len(result['lat_held'])} holds)")
    print(
        f"refusal latency     {ms(result['lat_refused'])} ({len(result['lat_refused'])} refusals)"
    )
    p = result["payments"]
    print(
        f"payments            {dict(p['statuses'])} at {args.pay_rate}/s; confirmed {p['confirmed']}"
    )
    print(
        f"payment->confirmed  {ms(p['latency'])}  (paying the sale's holds at once, behind its backlog)"
    )
    print(
        f"backlog drained     {result['drained']:.1f} s after the payments (every queue and outbox empty)"
    )
    st = result["steady"]
    print(
        f"steady state        {args.steady_rate:g} holds/s for {args.steady_seconds:g} s, each paid {args.think:g} s later: "
        f"{dict(st['statuses'])}; confirmed {st['confirmed']} of {st['paid']} paid"
    )
    print(f"  hold latency      {ms(st['hold'])}")
    print(f"  payment->confirmed {ms(st['latency'])}")
    print(
        f"  payment retries   {dict(RETRIES)} (all phases; 404: payments did not know the booking yet)"
    )
    print(
        "  CPU ms per paid booking (whole cycle, every process) "
        + ", ".join(
            f"{k} {1000 * v / max(1, st['paid']):.1f}"
            for k, v in sorted(st["cpu"].items(), key=lambda kv: -kv[1])
        )
    )
    infra = {k: 1000 * v / max(1, st["paid"]) for k, v in st["infra"].items()}
    total = sum(1000 * v / max(1, st["paid"]) for v in st["cpu"].values()) + sum(infra.values())
    print(
        "  CPU ms per paid booking besides: "
        + ", ".join(f"{k} {v:.1f}" for k, v in infra.items())
        + f"; all together {total:.1f} ms: two cores"
        f" carry at most ~{2000 / max(total, 0.1):.0f} paid bookings/s"
    )
    print(f"peak memory         {result['peak_rss'] / 2**20:,.0f} MiB (all platform processes)")
    print(
        "CPU s during sale   "
        + ", ".join(f"{k} {v:.1f}" for k, v in sorted(b["cpu"].items(), key=lambda kv: -kv[1]))
        + "; besides: "
        + ", ".join(f"{k} {v:.1f}" for k, v in b["infra"].items())
        + f" (two cores give {2 * b['seconds']:.1f})"
    )
    print(
        f"bare baseline       {base:,.0f} attempts/s (one FastAPI process, conditional UPDATE only)"
    )
    print(f"  held latency      {ms(base_held)} ({len(base_held)} holds)")
    print(f"  refusal latency   {ms(base_refused)} ({len(base_refused)} refusals)")
    print(f"ratio               {b['rate'] / base:.2f} of the baseline")
    print(
        f"holds p99 ratio     {pct(result['lat_held'], 99) / pct(base_held, 99):.2f} of the "
        "baseline's holds p99 (target: at most 2)"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--attempts", type=int, default=10_000)
    ap.add_argument("--seats", type=int, default=1_000)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--users", type=int, default=1_000)
    ap.add_argument("--pay-rate", type=float, default=100)
    ap.add_argument("--gateway-workers", type=int, default=1)
    ap.add_argument("--booking-workers", type=int, default=1)
    ap.add_argument("--steady-rate", type=float, default=100, help="holds/s in the steady phase")
    ap.add_argument("--steady-seconds", type=float, default=10)
    ap.add_argument(
        "--mixed-types",
        action="store_true",
        help="the event has three ticket types; each attempt orders 1-3 lines of distinct types",
    )
    ap.add_argument("--dump", help="write each sale attempt's send time, latency and status here")
    ap.add_argument(
        "--think", type=float, default=1.0, help="seconds between a hold and its payment"
    )
    asyncio.run(main(ap.parse_args()))
