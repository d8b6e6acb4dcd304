"""How many messages/s one outbox relay moves from PostgreSQL to RabbitMQ (confirmed).

Fills a scratch database's outbox with N committed rows (as services write them), then runs the
kit's OutboxRelay (``run()``, as a service does) until every row is confirmed and deleted, and
prints messages/s and the relay process's CPU time per message. Runs against the local RabbitMQ
and PostgreSQL in a scratch vhost and database, removed afterwards.

    .venv/bin/python bench/outbox_relay_bench.py [--messages 20000] [--batch 500] [--depth 2]
        [--traced]

``--traced`` installs the OpenTelemetry SDK tracer provider as a service does (spans recorded;
exported only if ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set), so the producer spans cost what they
cost in production; without it the API's no-op tracer is used.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from kit.db import Database
from kit.broker import make_broker
from kit.publishing import declare_publishers, outbox_publish
from kit.outbox import OUTBOX, OutboxRelay
from kit.settings import ServiceSettings
from kit.tables import add_kit_tables
from contracts.messages import BookingCreated
from contracts.topology import declare_topology


async def main(n: int, batch: int, depth: int, traced: bool) -> None:
    if traced:
        from observability import configure_tracing

        configure_tracing("relaybench")
    run = uuid.uuid4().hex[:6]
    vhost = f"bench_{run}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], check=True
    )
    settings = ServiceSettings(
        service_name="relaybench",
        database_prefix=f"bench_{run}_",
        rabbitmq_url=f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        outbox_batch_size=batch,
    )
    db = Database(settings)
    await db.prepare()
    async with db.engine.begin() as conn:
        await conn.run_sync(add_kit_tables(sa.MetaData()).__getitem__("outbox").metadata.create_all)
    broker = make_broker(settings)
    publishers = declare_publishers(broker, [BookingCreated])
    await broker.connect()
    await declare_topology(broker)
    try:
        rows = []
        for _ in range(n):
            m = BookingCreated(
                booking_id=uuid.uuid4(),
                event_id=uuid.uuid4(),
                user_id=uuid.uuid4(),
                quantity=1,
                amount=Decimal("10.00"),
                currency="EUR",
                producer="bench",
                expires_at=datetime.now(UTC) + timedelta(minutes=10),
            )
            rows.append(
                {
                    "id": m.message_id,
                    "routing_key": m.routing_key,
                    "message_type": m.message_type,
                    "payload": m.model_dump(mode="json"),
                    "headers": {},
                }
            )
        async with db.engine.begin() as conn:
            for i in range(0, n, 5000):
                await conn.execute(OUTBOX.insert(), rows[i : i + 5000])
        relay = OutboxRelay(db, outbox_publish(publishers), batch_size=batch, pipeline_depth=depth)
        start, cpu = time.perf_counter(), time.process_time()
        running = asyncio.create_task(relay.run())
        while relay.published_total < n and not running.done():
            await asyncio.sleep(0.005)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        relay.stop()
        await running
        async with db.engine.connect() as conn:
            left = (await conn.execute(sa.select(sa.func.count()).select_from(OUTBOX))).scalar_one()
        print(
            f"outbox relay: {n} messages in {elapsed:.2f} s = {n / elapsed:,.0f} msg/s, "
            f"relay CPU {cpu / n * 1e6:.0f} us/msg (batch {batch}, pipeline depth {depth}, "
            f"persistent, publisher confirms, 1 relay{', traced' if traced else ''}); "
            f"{left} rows left"
        )
        bare, bare_cpu = await bare_publishing(settings.rabbitmq_url, rows, batch)
        print(
            f"bare aio-pika: the same {n} messages in batches of {batch}, no database: "
            f"{bare:,.0f} msg/s, CPU {bare_cpu * 1e6:.0f} us/msg; "
            f"relay/bare {n / elapsed / bare:.2f}"
        )
    finally:
        await broker.stop()
        await db.dispose()
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False)
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{settings.database_name}" WITH (FORCE)')


async def bare_publishing(url: str, rows: list[dict], batch: int) -> tuple[float, float]:
    """The machine's publishing floor, in the same run: aio-pika alone publishing the same bodies
    (persistent, mandatory, publisher confirms) to the same exchange, one batch in flight at a
    time; no outbox, no spans. Returns (msg/s, CPU seconds per message)."""
    import aio_pika
    import orjson

    from contracts.topology import DOMAIN_EXCHANGE

    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(DOMAIN_EXCHANGE.name, ensure=False)
        messages = [
            (
                aio_pika.Message(
                    orjson.dumps(r["payload"]),
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=str(r["id"]),
                    type=r["message_type"],
                ),
                r["routing_key"],
            )
            for r in rows
        ]
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(messages), batch):
            await asyncio.gather(
                *(exchange.publish(m, key, mandatory=True) for m, key in messages[i : i + batch])
            )
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        await connection.close()
    return len(rows) / elapsed, cpu / len(rows)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--messages", type=int, default=20000)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--depth", type=int, default=2, help="batches in flight at once")
    p.add_argument("--traced", action="store_true", help="record spans with the OpenTelemetry SDK")
    a = p.parse_args()
    asyncio.run(main(a.messages, a.batch, a.depth, a.traced))
