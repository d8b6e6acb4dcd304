"""What only a real RabbitMQ shows: acks, redelivery after a crash, dead-lettering, outages."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import aio_pika
import pytest
import sqlalchemy as sa
from yarl import URL

from apps.events.bootstrap import build as build_events
from contracts.topology import DELIVERY_LIMIT, DOMAIN_EXCHANGE, dead_letter_queue_name
from tests.conftest import http_client
from tests.support.messages import event_created
from tests.support import probe
from tests.support.api_bodies import event_body
from tests.support.tcp_proxy import TcpProxy
from tests.support.tokens import bearer, mint
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


async def publish_raw(amqp, body: bytes, routing_key: str = "event_created") -> None:
    exchange = await amqp.get_exchange(DOMAIN_EXCHANGE.name)
    await exchange.publish(
        aio_pika.Message(body, content_type="application/json", delivery_mode=2),
        routing_key=routing_key,
    )


async def effects_by_title(service) -> dict[str, int]:
    async with service.db.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(probe.effects.c.title, sa.func.count()).group_by(probe.effects.c.title)
        )
        return dict(rows.all())


async def queue_depth(amqp, name: str) -> int:
    """Messages ready in ``name`` right now (aio-pika's Queue object caches its declare result)."""
    underlay = await amqp.get_underlay_channel()
    return (await underlay.queue_declare(name, passive=True)).message_count or 0


async def test_poison_message_is_dead_lettered_after_bounded_retries_while_others_flow(
    start_service, amqp
):
    async with start_service(probe.build) as svc:
        dlq = dead_letter_queue_name(probe.QUEUE)
        await publish_raw(amqp, event_created(title="poison").model_dump_json().encode())
        goods = [event_created(title=f"good-{i}") for i in range(20)]
        for m in goods:
            await publish_raw(amqp, m.model_dump_json().encode())
        # a payload that breaks the contract goes to the DLQ at once, without retries
        await publish_raw(amqp, b'{"message_type": "event_created", "title": "broken"}')

        await eventually(lambda: queue_depth(amqp, dlq), until=lambda n: n == 2, timeout=30)
        counts = await effects_by_title(svc)
        assert all(counts.get(m.title) == 1 for m in goods), counts
        assert "poison" not in counts
        # bounded: the poison message was tried as often as the delivery limit allows, no more
        assert DELIVERY_LIMIT <= probe.attempts["poison"] <= DELIVERY_LIMIT + 1
        assert await queue_depth(amqp, probe.QUEUE.name) == 0

        parked = []
        queue = await amqp.declare_queue(dlq, passive=True)
        for _ in range(2):
            msg = await queue.get(timeout=5)
            parked.append(msg.body)
            await msg.ack()
        assert any(b'"poison"' in b for b in parked) and any(b'"broken"' in b for b in parked)


async def test_consumer_killed_after_commit_before_ack_gets_message_again_effect_once(
    start_service, amqp, tmp_path
):
    marker = tmp_path / "crashed"
    env = {**os.environ, "PROBE_CRASH_MARKER": str(marker), "OUTBOX_RELAY": "false"}
    cmd = [sys.executable, "-m", "tests.support.probe"]
    async with start_service(probe.build, connect_broker=False) as svc:  # only for DB access
        first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        try:
            assert first.stdout is not None and "probe ready" in first.stdout.readline()
            message = event_created(title="crash-after-commit")
            await publish_raw(amqp, message.model_dump_json().encode())
            await asyncio.to_thread(first.wait, 30)
            assert first.returncode == -9 and marker.exists()  # it died before acking
            assert (await effects_by_title(svc)).get("crash-after-commit") == 1
            # the unacked message went back to the queue
            await eventually(lambda: queue_depth(amqp, probe.QUEUE.name), until=lambda n: n == 1)
        finally:
            if first.poll() is None:
                first.kill()

        second = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        try:
            assert second.stdout is not None and "probe ready" in second.stdout.readline()
            await eventually(lambda: queue_depth(amqp, probe.QUEUE.name), until=lambda n: n == 0)
            # redelivered and acked, yet the effect happened once
            assert (await effects_by_title(svc)).get("crash-after-commit") == 1
            assert await queue_depth(amqp, dead_letter_queue_name(probe.QUEUE)) == 0
        finally:
            second.terminate()
            await asyncio.to_thread(second.wait, 30)


async def test_outbox_keeps_messages_while_broker_unreachable_and_delivers_them_after(
    start_service, amqp, rabbitmq_url
):
    proxy = TcpProxy(target_port=URL(rabbitmq_url).port or 5672)
    await proxy.start()
    via_proxy = str(URL(rabbitmq_url).with_port(proxy.port))

    async with start_service(
        build_events, rabbitmq_url=via_proxy, outbox_poll_seconds=0.2
    ) as events:
        # the exchange exists once a service has declared the topology (this test may run alone)
        exchange = await amqp.get_exchange(DOMAIN_EXCHANGE.name)
        seen = await amqp.declare_queue(f"test.outage.{uuid.uuid4().hex[:6]}", exclusive=True)
        await seen.bind(exchange, routing_key="event_created")
        await proxy.cut()  # the broker is gone for this service
        token = mint(uuid.uuid4(), "organizer")
        created = []
        async with http_client(events) as client:
            for i in range(10):
                resp = await client.post(
                    "/events/create",
                    headers=bearer(token),
                    json=event_body(title=f"outage {i}"),
                )
                assert resp.status_code == 201  # HTTP keeps working without the broker
                created.append(resp.json()["id"])

        async def backlog() -> int:
            return (await events.relay.backlog())[0]

        await asyncio.sleep(1.0)  # give the relay time to try (and fail) while cut off
        assert await backlog() == 10  # held, not lost
        assert await queue_depth(amqp, seen.name) == 0

        await proxy.start()  # the broker is back on the same address
        await eventually(backlog, until=lambda n: n == 0, timeout=30)
        received = set()
        async with seen.iterator(timeout=10) as it:
            async for msg in it:
                await msg.ack()
                received.add(__import__("json").loads(msg.body)["event_id"])
                if received >= set(created):
                    break
        assert received == set(created)
    await proxy.cut()
