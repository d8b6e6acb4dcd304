"""The broker side of the tests: publish a contract message as another service would, and watch
what a service publishes."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aio_pika

from contracts.envelope import Envelope
from contracts.topology import DOMAIN_EXCHANGE


async def send(exchange: Any, message: Envelope) -> None:
    """Publish as a producing service's outbox relay would: persistent JSON with its id."""
    await exchange.publish(
        aio_pika.Message(
            message.model_dump_json().encode(),
            content_type="application/json",
            message_id=str(message.message_id),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        ),
        routing_key=message.routing_key,
    )


async def domain_exchange(amqp: Any) -> Any:
    # Declared, not looked up: the test may run before any service declared it.
    return await amqp.declare_exchange(DOMAIN_EXCHANGE.name, type="topic", durable=True)


async def publish(amqp: Any, message: Envelope) -> None:
    """Publish ``message`` to the domain exchange, as its producer's outbox relay would."""
    await send(await domain_exchange(amqp), message)


async def bound_queue(amqp: Any, *routing_keys: str) -> Any:
    """A private queue bound like a consumer's, to see what the service publishes."""
    exchange = await domain_exchange(amqp)
    queue = await amqp.declare_queue(f"test.{uuid.uuid4().hex[:8]}", exclusive=True)
    for key in routing_keys:
        await queue.bind(exchange, routing_key=key)
    return queue


async def bound_routing_keys(vhost: str, service: str) -> set[str]:
    """The routing keys the domain exchange routes to ``service``'s queue of the same name
    (``<service>.<routing key>``) now, as ``rabbitmqctl list_bindings`` shows them (the event
    loop runs on meanwhile)."""
    proc = await asyncio.create_subprocess_exec(
        *["rabbitmqctl", "-q", "list_bindings", "-p", vhost, "--no-table-headers"],
        *["source_name", "destination_name", "routing_key"],
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, f"rabbitmqctl list_bindings exited {proc.returncode}"
    out = stdout.decode()
    rows = [line.split("\t") for line in out.splitlines() if line.count("\t") == 2]
    return {
        key
        for source, queue, key in rows
        if source == DOMAIN_EXCHANGE.name and queue == f"{service}.{key}"
    }
