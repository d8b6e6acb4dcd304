"""Where the CPU of one seat hold goes: every process's share, the consumers' included.

Starts the whole platform as ``flash_sale.py`` does (``bench/_platform.py``), creates one event
with far more seats than holds (no refusal, no sold-out memory), then sends ``--holds`` holds of
one seat each, ``--concurrency`` at a time, each from a user of its own (tokens minted
beforehand), straight to booking or through the gateway (``--via``). It prints, in ms of CPU per
hold (``/proc`` utime + stime, the figure least skewed by other load):

* *during*: what each process spent while the holds were being answered;
* *all told*: the same once every queue and outbox is empty again, i.e. with everything the
  holds set off (the ``booking_created`` consumers, the relay, the broker).

    .venv/bin/python bench/hold_cost.py                      # 2,000 holds, 16 in flight
    .venv/bin/python bench/hold_cost.py --via gateway --holds 3000 --concurrency 64

It takes about a minute, start-up included. There is no target; compare runs of one sitting.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench._platform import BenchPlatform  # noqa: E402
from flash_sale import PG, cpu_now, cpu_since, drive, machine_speed, post_event  # noqa: E402


async def run(args: argparse.Namespace) -> None:
    platform = BenchPlatform()
    print(f"machine speed       {machine_speed():.2f} s for 10M additions (before)", flush=True)
    await platform.start()
    try:
        connector = aiohttp.TCPConnector(limit=args.concurrency, keepalive_timeout=3)
        async with aiohttp.ClientSession(connector=connector) as session:
            status, event = await post_event(
                session, platform, title="Roomy", venue="Field", capacity=100_000, price="10.00"
            )
            assert status == 201, event
            await _known_to_booking(platform, uuid.UUID(event["id"]))
            base = platform.gateway if args.via == "gateway" else platform.url("booking")
            body = {"event_id": event["id"], "quantity": 1}
            tokens = [platform.token(uuid.uuid4()) for _ in range(args.holds + args.warm_up)]

            def hold(i: int) -> tuple[str, str, dict]:
                headers = {"Authorization": f"Bearer {tokens[i]}"}
                return "POST", f"{base}/booking/create", {"json": body, "headers": headers}

            await drive(session, args.warm_up, args.concurrency, hold)
            await platform.drain()
            offset = args.warm_up
            before = cpu_now(platform)
            seconds, _results, statuses = await drive(
                session, args.holds, args.concurrency, lambda i: hold(offset + i)
            )
            during = cpu_since(platform, before)
            drained = await platform.drain()
            told = cpu_since(platform, before)
        print(f"holds               {dict(statuses)} in {seconds:.2f} s via {args.via}")
        print(f"                    ({args.holds / seconds:,.0f}/s, {args.concurrency} in flight)")
        print(f"drained             {drained:.1f} s after the last hold")
        for label, used in (("during", during), ("all told", told)):
            per = {**used["cpu"], **used["infra"]}
            shown = {k: v * 1000 / args.holds for k, v in per.items() if v > 0}
            total = sum(shown.values())
            parts = ", ".join(
                f"{k} {v:.2f}" for k, v in sorted(shown.items(), key=lambda kv: -kv[1])
            )
            print(f"CPU ms per hold, {label}: {parts}; all together {total:.2f}")
    finally:
        await platform.stop()
    print(f"machine speed       {machine_speed():.2f} s for 10M additions (after)")


async def _known_to_booking(platform: BenchPlatform, event_id: uuid.UUID) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        conn = await asyncpg.connect(f"{PG}/{platform.db_prefix}booking")
        try:
            if await conn.fetchval("SELECT count(*) FROM inventory WHERE event_id=$1", event_id):
                return
        finally:
            await conn.close()
        await asyncio.sleep(0.1)
    raise TimeoutError("booking never learned of the event")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holds", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warm-up", type=int, default=200)
    parser.add_argument("--via", choices=("booking", "gateway"), default="booking")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
