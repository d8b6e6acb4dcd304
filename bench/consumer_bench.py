"""CPU per consumed message of the analytics, notifications and payments consumers.

Starts ONE service as its production process (``uvicorn apps.<service>.main:app``: telemetry,
delivery policy, inbox, relay, everything as deployed) against the local RabbitMQ and PostgreSQL,
in a scratch vhost and database (both removed afterwards). Publishes the service's share of a
flash sale into its queues, as booking and payments would tell it: bookings of one event, most
paid and confirmed, some declined and cancelled, some expired. Each contract model goes out with
its envelope and the AMQP properties the outbox relay sets. Then waits until the service's inbox
holds every message and prints:

* messages/s (publish start to last inbox row; the publish itself takes a fraction of that);
* CPU ms per message of the service process (/proc utime+stime, the figure least skewed by
  other work on the machine), and of its PostgreSQL backends;
* that no message was dead-lettered and every queue of the service is empty.

    .venv/bin/python bench/consumer_bench.py                      # all three, 2,000 messages each
    .venv/bin/python bench/consumer_bench.py --service analytics --messages 3000
    .venv/bin/python bench/consumer_bench.py --service analytics --profile /tmp/analytics.txt

``--profile FILE`` runs ``py-spy record -f raw`` on the service for the measured phase (its
figures are then skewed by the sampling; compare runs without it). Notifications run with their
delivery worker off (sending is not consuming).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._platform import relay_message  # noqa: E402
from contracts.envelope import Envelope  # noqa: E402
from contracts.messages import (  # noqa: E402
    BookingCancelled,
    BookingConfirmed,
    BookingCreated,
    BookingExpired,
    PaymentConfirmed,
    PaymentFailed,
    UserRegistered,
)
from contracts.topology import ANALYTICS_FACTS, CONSUMERS  # noqa: E402
from tests.support.messages import event_created  # noqa: E402
from tests.support.processes import stop_processes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("analytics", "notifications", "payments")
PG = "postgresql://postgres@127.0.0.1:5432/"
TICK = os.sysconf("SC_CLK_TCK")


def routed_to(service: str) -> set[str]:
    """Routing keys whose messages reach ``service``'s queues."""
    facts = ANALYTICS_FACTS if service == "analytics" else CONSUMERS[service]
    return {m.routing_key for m in facts}


@dataclass
class Story:
    warm_up: list[Envelope]  # facts the service must know first (the event, the users)
    facts: list[Envelope]  # the measured flash sale: the messages the service receives


def flash_sale(service: str, n: int, users: int, seed: int = 7) -> Story:
    """Bookings of one event until ``n`` messages reach ``service``: 80 % paid and confirmed,
    10 % declined (payment_failed, then booking_cancelled), 10 % expired."""
    rnd = random.Random(seed)
    organizer = uuid.uuid4()
    event = event_created(
        organizer_id=organizer,
        title="Flash sale",
        venue="Arena",
        capacity=100_000,
        price=Decimal("20.00"),
    )
    people = [
        UserRegistered(
            producer="auth",
            user_id=uuid.uuid4(),
            email=f"fan{i}@example.com",
            full_name=f"Fan {i}",
            role="customer",
            phone=f"+35191{i:07d}" if i % 4 == 0 else None,
        )
        for i in range(users)
    ]
    wanted = routed_to(service)
    facts: list[Envelope] = []
    count = 0
    while count < n:
        user = rnd.choice(people).user_id
        qty = rnd.choice((1, 1, 2, 2, 4))
        common = {
            "booking_id": uuid.uuid4(),
            "event_id": event.event_id,
            "user_id": user,
            "quantity": qty,
            "amount": Decimal("20.00") * qty,
            "currency": "EUR",
        }
        created = BookingCreated(
            producer="booking", expires_at=datetime.now(UTC) + timedelta(minutes=10), **common
        )
        saga = {"correlation_id": created.message_id}
        story: list[Envelope] = [created]
        pay = {
            "payment_id": uuid.uuid4(),
            "booking_id": common["booking_id"],
            "user_id": user,
            "event_id": event.event_id,
            "amount": common["amount"],
            "currency": "EUR",
        }
        roll = rnd.random()
        if roll < 0.8:
            paid = PaymentConfirmed(
                producer="payments", provider_reference="ch_bench", **saga, **pay
            )
            story += answered(paid, BookingConfirmed, common, payment_id=pay["payment_id"])
        elif roll < 0.9:
            failed = PaymentFailed(
                producer="payments", failure_reason="card_declined", **saga, **pay
            )
            story += answered(
                failed, BookingCancelled, common, reason="payment_failed", refund_due=False
            )
        else:
            story.append(BookingExpired(producer="booking", **saga, **common))
        for fact in story:
            facts.append(fact)
            count += fact.routing_key in wanted
    warm_up: list[Envelope] = [event]
    if service == "notifications":
        warm_up += people
    return Story(
        warm_up=[m for m in warm_up if m.routing_key in wanted],
        facts=[m for m in facts if m.routing_key in wanted],
    )


def answered(
    payment: Envelope, booking: type[Envelope], common: dict[str, Any], **fields: Any
) -> list[Envelope]:
    """A payment's outcome and booking's answer to it (caused by it, in the same flow)."""
    answer = booking(
        producer="booking",
        causation_id=payment.message_id,
        correlation_id=payment.correlation_id,
        **common,
        **fields,
    )
    return [payment, answer]


def queue_of(service: str, message: Envelope) -> str:
    return "analytics" if service == "analytics" else f"{service}.{message.routing_key}"


async def publish(
    channel: aio_pika.abc.AbstractChannel, service: str, messages: list[Envelope]
) -> None:
    """As the outbox relay publishes (persistent, confirmed, pipelined, the same properties),
    but straight into the service's queues: the other services' copies would only load the
    broker, which shares the machine with the consumer."""
    exchange = channel.default_exchange

    async def one(m: Envelope) -> None:
        await exchange.publish(relay_message(m), routing_key=queue_of(service, m))

    for i in range(0, len(messages), 256):
        await asyncio.gather(*(one(m) for m in messages[i : i + 256]))


def proc_cpu(pid: int) -> float:
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    return 0.0


class ScratchDb:
    def __init__(self, name: str) -> None:
        self.name = name

    def _conn(self) -> psycopg.Connection:
        return psycopg.connect(PG + self.name, autocommit=True)

    def inbox_count(self) -> int:
        with self._conn() as c:
            return c.execute("SELECT count(*) FROM inbox").fetchone()[0]  # type: ignore[index]

    def backend_cpu(self) -> dict[int, float]:
        """CPU seconds of the service's PostgreSQL backends (its pool connections)."""
        with self._conn() as c:
            pids = [
                r[0]
                for r in c.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                    (self.name,),
                )
            ]
        return {p: proc_cpu(p) for p in pids}


async def wait_for(db: ScratchDb, target: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while True:
        done = await asyncio.to_thread(db.inbox_count)
        if done >= target:
            return time.perf_counter()
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done} of {target} messages consumed in {timeout:.0f} s")
        await asyncio.sleep(0.1)


async def wait_ready(url: str, proc: subprocess.Popen, log: str) -> None:
    deadline = time.monotonic() + 120
    async with aiohttp.ClientSession() as s:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"service died, see {log}")
            with contextlib.suppress(aiohttp.ClientError):
                async with s.get(f"{url}/ready") as r:
                    if r.status == 200:
                        return
            if time.monotonic() > deadline:
                raise RuntimeError(f"service not ready, see {log}")
            await asyncio.sleep(0.3)


async def dead_lettered(channel: aio_pika.abc.AbstractChannel, service: str) -> tuple[int, int]:
    """(messages left in the service's queues, messages in their dead-letter queues)."""
    names = (
        ["analytics"]
        if service == "analytics"
        else [f"{service}.{key}" for key in routed_to(service)]
    )
    left = parked = 0
    for name in names:
        queue = await channel.declare_queue(name, passive=True)
        left += queue.declaration_result.message_count or 0
        dlq = await channel.declare_queue(f"{name}.dlq", passive=True)
        parked += dlq.declaration_result.message_count or 0
    return left, parked


async def run_one(service: str, n: int, users: int, profile: str | None) -> dict[str, float]:
    run = uuid.uuid4().hex[:6]
    vhost, prefix = f"bench_{run}", f"bench_{run}_"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], check=True
    )
    port = _free_port()
    log = f"/tmp/{vhost}-{service}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_EXPORTER")}
    env.update(
        RABBITMQ_URL=f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        DATABASE_PREFIX=prefix,
        LOG_LEVEL="WARNING",
        ENVIRONMENT="test",
        DELIVERY_WORKER="false",
        JWT_JWKS='{"keys": []}',
        SMTP_PORT=str(_free_port()),
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            f"apps.{service}.main:app",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),  # noqa: SIM115
    )
    db = ScratchDb(f"{prefix}{service}")
    spy: subprocess.Popen | None = None
    try:
        await wait_ready(f"http://127.0.0.1:{port}", proc, log)
        story = flash_sale(service, n, users)
        consumed = len(story.facts)
        conn = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:5672/{vhost}")
        async with conn:
            channel = await conn.channel(publisher_confirms=True)
            await publish(channel, service, story.warm_up)
            await wait_for(db, len(story.warm_up), 120)
            await asyncio.sleep(1.5)  # let the warm-up's stragglers (relay, acks) settle
            if profile:
                spy = subprocess.Popen(
                    [
                        str(ROOT / ".venv/bin/py-spy"),
                        "record",
                        "-f",
                        "raw",
                        "-r",
                        "200",
                        "-o",
                        profile,
                        "-p",
                        str(proc.pid),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                await asyncio.sleep(1)
            cpu0, pg0 = proc_cpu(proc.pid), db.backend_cpu()
            t0 = time.perf_counter()
            await publish(channel, service, story.facts)
            t_pub = time.perf_counter() - t0
            t1 = await wait_for(db, len(story.warm_up) + consumed, 600)
            cpu1, pg1 = proc_cpu(proc.pid), db.backend_cpu()
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                await asyncio.to_thread(spy.wait, 30)
            await asyncio.sleep(0.5)  # acks of the last messages
            left, parked = await dead_lettered(channel, service)
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        await stop_processes([proc])
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False)
        with psycopg.connect(PG + "postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)')
    elapsed = t1 - t0
    pg_cpu = sum(v - pg0.get(p, 0.0) for p, v in pg1.items())
    figures = {
        "messages": consumed,
        "seconds": elapsed,
        "msgs_per_s": consumed / elapsed,
        "cpu_ms": (cpu1 - cpu0) * 1000 / consumed,
        "pg_cpu_ms": pg_cpu * 1000 / consumed,
    }
    print(
        f"{service:13s} {consumed:5d} msgs in {elapsed:5.1f} s = {figures['msgs_per_s']:6.0f} msg/s"
        f" | service CPU {figures['cpu_ms']:5.2f} ms/msg | its PostgreSQL backends"
        f" {figures['pg_cpu_ms']:4.2f} ms/msg | publish {t_pub:.2f} s | left {left}, "
        f"dead-lettered {parked}" + (f" | profile {profile}" if profile else ""),
        flush=True,
    )
    if left or parked:
        raise SystemExit(f"{service}: {left} messages left, {parked} dead-lettered (see {log})")
    return figures


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--service", choices=(*SERVICES, "all"), default="all")
    p.add_argument("--messages", type=int, default=2000, help="messages consumed per service")
    p.add_argument(
        "--users",
        type=int,
        default=200,
        help="distinct customers (notifications learns them first from user_registered)",
    )
    p.add_argument("--profile", help="py-spy raw output file (with --service all: a prefix)")
    a = p.parse_args()
    services = SERVICES if a.service == "all" else (a.service,)
    for service in services:
        profile = a.profile and (f"{a.profile}.{service}" if len(services) > 1 else a.profile)
        await run_one(service, a.messages, a.users, profile)


if __name__ == "__main__":
    asyncio.run(main())
