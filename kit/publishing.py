"""What a service publishes: its declared publishers, and the outbox relay's publisher.

Persistent messages, publisher confirms, ``mandatory`` with returns raising, so an unroutable
publish is an error the outbox retries rather than a silent loss. The outbox relay publishes each
claimed batch as concurrent aio-pika publishes on a channel of its own (:class:`OutboxPublisher`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractExchange, AbstractRobustChannel, AbstractRobustConnection
from faststream.rabbit import RabbitBroker
from faststream.rabbit.publisher import RabbitPublisher  # what broker.publisher() returns
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from kit.outbox import OutboxMessage
from contracts.envelope import Envelope
from contracts.topology import DOMAIN_EXCHANGE


class Publishers(dict[str, RabbitPublisher]):
    """A service's publishers by routing key, and the broker they were declared on."""

    def __init__(self, broker: RabbitBroker, publishers: dict[str, RabbitPublisher]) -> None:
        super().__init__(publishers)
        self.broker = broker


def declare_publishers(broker: RabbitBroker, messages: Iterable[type[Envelope]]) -> Publishers:
    """One publisher per message type this service emits (they document it in AsyncAPI)."""
    return Publishers(
        broker,
        {
            m.routing_key: broker.publisher(
                exchange=DOMAIN_EXCHANGE,
                routing_key=m.routing_key,
                schema=m,
                title=m.routing_key,
                description=(m.__doc__ or "").strip(),
                persist=True,
                mandatory=True,
            )
            for m in messages
        },
    )


def outbox_publish(publishers: dict[str, RabbitPublisher]) -> OutboxPublisher:
    """The relay's publish function: outbox rows to their declared publishers' exchange."""
    return OutboxPublisher(publishers)


# The producer span of an outbox publish, per the OpenTelemetry messaging semantic conventions
# (RabbitMQ: the destination is the exchange; a single-message "send" span is also the message's
# creation context, so there is no separate "create" span).
_TRACER = trace.get_tracer("kit.publishing")

# For each message of a batch: None once the broker confirmed it, else why not.
Outcomes = list[BaseException | None]


class OutboxPublisher:
    """Publishes outbox rows: persistent, ``mandatory``, done only when the broker confirmed.

    On a real RabbitMQ the rows go through aio-pika's public API on a channel of its own (opened
    on the FastStream broker's connection, with publisher confirms and returns raising): a
    claimed batch is published as concurrent ``exchange.publish`` calls, so the whole batch is in
    flight at once and its confirms come back together. FastStream's publisher path costs
    several times more CPU per message (its telemetry and Prometheus middlewares build objects
    and two spans per publish): it capped one relay at ~2,700 messages/s on two cores. So this
    path does itself what that path did:

    * the same AMQP properties: persistent, ``message_id``, ``correlation_id``, ``type``,
      ``app_id``, ``timestamp``, ``content_type`` ``application/json`` and a ``schema_version``
      header; the body is the payload as compact JSON;
    * one PRODUCER span per message, child of the trace context stored with the row, injected
      into the headers (W3C ``traceparent``), so the consumers' FastStream telemetry continues the
      request's trace;
    * a publish the broker returns (unroutable) or nacks, or a channel that closes before the
      confirm, fails that message alone;
    * the wait for a usable channel is bounded (``channel_timeout``): during a broker outage a
      batch fails at once and the relay backs off, instead of holding its rows until the
      connection is back.

    Publishes in flight are bounded by the relay: one batch (``batch_size`` rows) per round, and
    at most ``pipeline_depth`` rounds plus ``handoff_in_flight`` hand-off batches at once.

    Under FastStream's ``TestRabbitBroker`` (unit tests, and the embedded mode's in-memory broker
    built on it) there is no AMQP connection: messages go one by one through the declared
    FastStream publishers, whose delivery the test broker intercepts.
    """

    def __init__(
        self,
        publishers: dict[str, RabbitPublisher],
        *,
        confirm_timeout: float = 30.0,
        channel_timeout: float = 5.0,
    ) -> None:
        self.publishers = publishers
        self.broker: RabbitBroker | None = getattr(publishers, "broker", None)
        self.confirm_timeout = confirm_timeout
        self.channel_timeout = channel_timeout
        self._connection: AbstractRobustConnection | None = None
        # A channel of its own: a channel error here (e.g. a missing exchange) never closes the
        # consumers' channel, and the consumers' prefetch does not apply to it.
        self.channel: AbstractRobustChannel | None = None
        # the polling rounds and the hand-off lane send concurrently: one of them opens it
        self._opening = asyncio.Lock()
        self._routes: dict[str, tuple[AbstractExchange, str | None]] = {}

    async def __call__(
        self, routing_key: str, payload: dict[str, Any], headers: dict[str, Any]
    ) -> None:
        """Publish one row; raises unless the broker confirmed it."""
        (error,) = await self.publish_many([OutboxMessage(routing_key, payload, headers)])
        if error is not None:
            raise error

    async def publish_many(self, messages: Sequence[OutboxMessage]) -> Outcomes:
        """Publish ``messages`` and wait for their confirms."""
        return await (await self.send_many(messages))

    async def send_many(self, messages: Sequence[OutboxMessage]) -> Awaitable[Outcomes]:
        """Send ``messages`` in order; returns what waits for their confirms.

        On RabbitMQ, when this returns the batch's publishes have started, in order: a batch
        sent afterwards queues behind them on the channel, so the caller may send the next one
        while this one's confirms come back."""
        try:
            # aio-pika waits for a lost connection to come back: bounded, so the relay backs off
            # (and can stop) instead of holding its claimed rows for the whole outage
            async with asyncio.timeout(self.channel_timeout):
                channel = await self._ready_channel()
        except Exception as exc:  # not connected (yet): nothing was sent
            if isinstance(exc, TimeoutError):
                exc = ConnectionError(f"no broker channel within {self.channel_timeout} s")
            return _done([exc for _ in messages])
        if channel is None:  # FastStream's test broker
            publish: Callable[[OutboxMessage], Awaitable[None]] = self._publish_with_faststream
        else:
            publish = partial(self._publish, channel, datetime.now(UTC))
        # gather starts one task per message now, in order; each queues for the channel's lock
        # in that order, so publishes reach the broker in row order.
        tasks = [asyncio.ensure_future(publish(m)) for m in messages]
        return asyncio.ensure_future(self._outcomes(tasks))

    async def _outcomes(self, tasks: Sequence[asyncio.Future[None]]) -> Outcomes:
        """Each publish's outcome once the broker confirmed it (or did not), under one deadline
        for the whole batch: a timer per publish (aio-pika's ``timeout=``) cost about a tenth of
        the relay's CPU per message (bench/outbox_relay_bench.py, 233-255 -> 218 us)."""
        try:
            _, pending = await asyncio.wait(tasks, timeout=self.confirm_timeout)
        except BaseException:  # cancelled: nothing of this batch may go on unobserved
            for t in tasks:
                t.cancel()
            raise
        for t in pending:
            t.cancel()
        return [
            TimeoutError(f"no confirm within {self.confirm_timeout} s")
            if t in pending
            else asyncio.CancelledError()
            if t.cancelled()
            else t.exception()
            for t in tasks
        ]

    async def _ready_channel(self) -> AbstractRobustChannel | None:
        """The relay's open channel on the broker's connection; None under the test broker."""
        assert self.broker is not None, "outbox publishers must be declared on a broker"
        # FastStream's public ``connect`` gives the broker's aio-pika connection (connecting it if
        # needed); FastStream's TestRabbitBroker patches the connection away: None.
        connection = await self.broker.connect()
        if connection is None:
            return None
        async with self._opening:
            if self.channel is None or self.channel.is_closed or connection is not self._connection:
                self.channel = None
                self._routes.clear()
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                self._connection, self.channel = connection, channel
            channel = self.channel
        # A robust channel reopens itself after the broker closed it or the connection came
        # back: wait (bounded by the caller) until it did.
        await channel.ready()
        return channel

    async def _route(
        self, channel: AbstractRobustChannel, routing_key: str
    ) -> tuple[AbstractExchange, str | None]:
        """(exchange, app_id) of a routing key's declared publisher; looked up once per channel.
        The exchange is not declared here (``declare_topology`` does): no round trip."""
        if (route := self._routes.get(routing_key)) is None:
            publisher = self.publishers[routing_key]
            exchange = await channel.get_exchange(publisher.exchange.name, ensure=False)
            route = self._routes[routing_key] = (exchange, publisher.message_options.get("app_id"))
        return route

    async def _publish(
        self, channel: AbstractRobustChannel, now: datetime, m: OutboxMessage
    ) -> None:
        """Publish one message under its producer span; returns once the broker confirmed it."""
        # (no await before ``exchange.publish`` takes the channel's lock but the route lookup,
        # which does not suspend: the batch's order is kept)
        exchange, app_id = await self._route(channel, m.routing_key)
        payload = m.payload
        message_id = str(payload["message_id"])
        correlation_id = str(payload.get("correlation_id") or message_id)
        body = orjson.dumps(payload)
        span = _TRACER.start_span(
            f"publish {exchange.name}",
            context=propagate.extract(m.headers or {}),
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "send",
                "messaging.operation.name": "publish",
                "messaging.destination.name": exchange.name,
                "messaging.rabbitmq.destination.routing_key": m.routing_key,
                "messaging.message.id": message_id,
                "messaging.message.conversation_id": correlation_id,
                "messaging.message.body.size": len(body),
            },
        )
        try:
            headers: dict[str, Any] = {"schema_version": payload.get("schema_version", 1)}
            propagate.inject(headers, context=trace.set_span_in_context(span))
            message = aio_pika.Message(
                body,
                headers=headers,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=message_id,
                correlation_id=correlation_id,
                type=payload.get("message_type"),
                app_id=app_id,
                timestamp=now,
            )
            # mandatory + the channel's on_return_raises: unroutable raises PublishError; a nack
            # raises DeliveryError; a channel closing before the confirm raises its reason
            await exchange.publish(
                message,
                m.routing_key,
                mandatory=True,
                timeout=None,  # the batch's deadline
            )
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, repr(exc)))
            span.set_attribute("error.type", type(exc).__qualname__)
            raise
        finally:
            span.end()

    async def _publish_with_faststream(self, m: OutboxMessage) -> None:
        token = otel_context.attach(propagate.extract(m.headers or {}))
        try:
            payload = m.payload
            await self.publishers[m.routing_key].publish(
                payload,
                message_id=str(payload["message_id"]),
                correlation_id=str(payload.get("correlation_id") or payload["message_id"]),
                message_type=payload.get("message_type"),
                headers={"schema_version": payload.get("schema_version", 1)},
                content_type="application/json",
            )
        finally:
            otel_context.detach(token)


def _done(outcomes: Outcomes) -> asyncio.Future[Outcomes]:
    future: asyncio.Future[Outcomes] = asyncio.get_running_loop().create_future()
    future.set_result(outcomes)
    return future
