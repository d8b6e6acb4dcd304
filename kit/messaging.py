"""Broker construction and the delivery policy every consumer follows.

* Telemetry: FastStream's OpenTelemetry middleware puts W3C context into message headers and
  makes a consume span per message, so queues do not break traces.
* Acks: a message is acked only after its handler returned, i.e. after the handler's unit of
  work committed. On failure:
  - a *permanent* failure (the payload does not match its contract, or the handler raised
    :class:`PermanentFailure`) is rejected without requeue: the queue dead-letters it at once;
  - anything else is treated as *transient* (database or broker hiccup): the message is
    requeued after a short back-off, and the quorum queue's delivery limit bounds the retries;
    past it the message is dead-lettered. Never an endless loop, never a silent drop.
* Publishing: persistent messages, publisher confirms, ``mandatory`` with returns raising, so an
  unroutable publish is an error the outbox retries rather than a silent loss. The outbox relay
  publishes its batches pipelined on a channel of its own (:class:`OutboxPublisher`).
* Logging: the per-message log line is at DEBUG (it costs throughput at INFO).
"""

from __future__ import annotations

import asyncio
import calendar
import json
import logging
import struct
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson
import pamqp.frame
from aiormq.abc import AbstractChannel, ChannelFrame
from faststream import BaseMiddleware
from faststream.exceptions import HandlerException, NackMessage, RejectMessage
from faststream.middlewares import AckPolicy
from faststream.rabbit import Channel, RabbitBroker, RabbitPublisher
from faststream.rabbit.opentelemetry import RabbitTelemetryMiddleware
from faststream.rabbit.prometheus import RabbitPrometheusMiddleware
from faststream.rabbit.publisher.producer import AioPikaFastProducerImpl
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from pamqp import commands as amqp
from pamqp import encode
from pydantic import ValidationError

from kit import metrics
from kit.db import Database, UnitOfWork
from kit.inbox import OneStatementHandler, apply_once, first_delivery
from kit.outbox import OutboxMessage
from kit.settings import ServiceSettings
from contracts.envelope import Envelope
from observability import set_span_attributes
from contracts.topology import DELIVERY_LIMIT, DOMAIN_EXCHANGE

log = logging.getLogger(__name__)


class PermanentFailure(Exception):  # noqa: N818
    """Raised by a handler for a message that can never succeed: it is dead-lettered at once."""


def _delivery_count(msg: Any) -> int:
    headers = getattr(msg, "headers", None) or {}
    try:
        return int(headers.get("x-delivery-count", 0))
    except (TypeError, ValueError):
        return 0


def delivery_policy(max_backoff: float) -> type[BaseMiddleware]:
    class DeliveryPolicyMiddleware(BaseMiddleware):
        async def consume_scope(self, call_next: Callable[[Any], Awaitable[Any]], msg: Any) -> Any:
            try:
                return await call_next(msg)
            except HandlerException:
                raise
            except (ValidationError, json.JSONDecodeError, UnicodeDecodeError, PermanentFailure) as exc:
                log.error(
                    "dead-lettering message %s: %s", getattr(msg, "message_id", "?"),
                    str(exc).splitlines()[0],
                )
                metrics.dead_lettered("invalid" if not isinstance(exc, PermanentFailure) else "permanent")
                raise RejectMessage(requeue=False) from exc
            except Exception as exc:
                attempt = _delivery_count(msg)
                if attempt >= DELIVERY_LIMIT:  # the broker dead-letters this one on nack
                    metrics.dead_lettered("retries_exhausted")
                log.warning(
                    "message %s failed (delivery %d), will be retried: %r",
                    getattr(msg, "message_id", "?"), attempt + 1, exc,
                )
                await asyncio.sleep(min(0.05 * 2**attempt, max_backoff))
                raise NackMessage(requeue=True) from exc

    return DeliveryPolicyMiddleware


def make_broker(settings: ServiceSettings, **overrides: Any) -> RabbitBroker:
    kw: dict[str, Any] = {
        "default_channel": Channel(
            prefetch_count=settings.consumer_prefetch, on_return_raises=True
        ),
        "ack_policy": AckPolicy.REJECT_ON_ERROR,
        "middlewares": [
            RabbitTelemetryMiddleware(),
            RabbitPrometheusMiddleware(registry=metrics.REGISTRY, app_name=settings.service_name),
            delivery_policy(settings.consumer_max_backoff_seconds),
        ],
        "log_level": logging.DEBUG,
        "app_id": settings.service_name,
        "graceful_timeout": 15.0,
        "reconnect_interval": 1.0,
        "description": "RabbitMQ of the Event Booking Platform",
    }
    kw.update(overrides)
    return RabbitBroker(settings.rabbitmq_url, **kw)


class Publishers(dict[str, RabbitPublisher]):
    """A service's publishers by routing key, and the broker they were declared on."""

    def __init__(self, broker: RabbitBroker, publishers: dict[str, RabbitPublisher]) -> None:
        super().__init__(publishers)
        self.broker = broker


def declare_publishers(broker: RabbitBroker, messages: Iterable[type[Envelope]]) -> Publishers:
    """One publisher per message type this service emits (they document it in AsyncAPI)."""
    return Publishers(broker, {
        m.routing_key: broker.publisher(
            exchange=DOMAIN_EXCHANGE,
            routing_key=m.routing_key,
            schema=m,
            title=f"{m.routing_key}:publish",
            description=(m.__doc__ or "").strip(),
            persist=True,
            mandatory=True,
        )
        for m in messages
    })


def outbox_publish(publishers: dict[str, RabbitPublisher]) -> OutboxPublisher:
    """The relay's publish function: outbox rows to their declared publishers' exchange."""
    return OutboxPublisher(publishers)


# The producer span of an outbox publish, per the OpenTelemetry messaging semantic conventions
# (RabbitMQ: the destination is the exchange; a single-message "send" span is also the message's
# creation context, so there is no separate "create" span).
_TRACER = trace.get_tracer("kit.messaging")
PERSISTENT = 2  # AMQP delivery mode

# For each message of a batch: None once the broker confirmed it, else why not.
Outcomes = list[BaseException | None]


class OutboxPublisher:
    """Publishes outbox rows: persistent, ``mandatory``, done only when the broker confirmed.

    On a real RabbitMQ a batch is written to a channel of its own in one go, and its confirms are
    awaited together. FastStream's publisher path costs several times more CPU per message (its
    telemetry and Prometheus middlewares build objects and two spans per publish, then aio-pika
    takes a lock, a task and a socket write per message): it capped one relay at ~2,700
    messages/s on two cores. So this path does itself what that path did:

    * the same AMQP properties: persistent, ``message_id``, ``correlation_id``, ``type``,
      ``app_id``, ``timestamp``, ``content_type`` ``application/json`` and a ``schema_version``
      header; the body is the payload as compact JSON;
    * one PRODUCER span per message, child of the trace context stored with the row, injected
      into the headers (W3C ``traceparent``), so the consumers' FastStream telemetry continues the
      request's trace;
    * a publish the broker returns (unroutable) or nacks, or a channel that closes before the
      confirm, fails that message alone.

    Under FastStream's ``TestRabbitBroker`` (unit tests, and the embedded mode's in-memory broker
    built on it) there is no AMQP channel: messages go one by one through the declared FastStream
    publishers, whose delivery the test broker intercepts.
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
        # A channel of its own: its publish numbering is ours alone, and a channel error here
        # never closes the consumers' channel.
        self._channel = Channel(publisher_confirms=True, on_return_raises=True)
        self._routes: dict[tuple[int, str], tuple[str, str | None, bytes]] = {}

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

        On RabbitMQ, when this returns the batch is on its way, so the caller may send the next
        one while this one's confirms come back."""
        if not self._amqp():
            return _done(list(await asyncio.gather(
                *(self._publish_with_faststream(m) for m in messages), return_exceptions=True
            )))
        try:
            # aio-pika waits for a lost connection to come back: bounded, so the relay backs off
            # (and can stop) instead of holding its claimed rows for the whole outage
            async with asyncio.timeout(self.channel_timeout):
                manager = self.broker.config.channel_manager  # type: ignore[union-attr]
                channel = await (await manager.get_channel(self._channel)).get_underlay_channel()
        except Exception as exc:  # not connected (yet): nothing was sent
            if isinstance(exc, TimeoutError):
                exc = ConnectionError(f"no broker connection within {self.channel_timeout} s")
            return _done([exc for _ in messages])
        outcomes: Outcomes = [None] * len(messages)
        spans: list[Span] = []
        sent: list[int] = []
        publishes: list[tuple[bytes, str]] = []
        now = datetime.now(UTC)
        for i, m in enumerate(messages):
            try:
                span, message_id, frames = self._prepare(channel, m, now)
            except Exception as exc:  # e.g. a routing key this service declared no publisher for
                outcomes[i] = exc
                continue
            spans.append(span)
            sent.append(i)
            publishes.append((frames, message_id))
        try:
            batch = await PipelinedBatch.write(channel, publishes) if publishes else None
        except BaseException as exc:  # the channel closed: nothing of the batch was sent
            _end_spans(spans, [exc] * len(spans))
            if not isinstance(exc, Exception):
                raise
            for i in sent:
                outcomes[i] = exc
            return _done(outcomes)
        settle = asyncio.ensure_future(self._settle(batch, outcomes, sent, spans))
        if batch is not None:  # however the wait ends, even cancelled before it began
            settle.add_done_callback(lambda _: _abandon(batch, spans))
        return settle

    async def _settle(
        self, batch: PipelinedBatch | None, outcomes: Outcomes, sent: list[int], spans: list[Span]
    ) -> Outcomes:
        if batch is None:
            return outcomes
        confirmed = await batch.confirmed(self.confirm_timeout)
        _end_spans(spans, confirmed)
        spans.clear()
        for i, outcome in zip(sent, confirmed, strict=True):
            outcomes[i] = outcome
        return outcomes

    def _amqp(self) -> bool:
        """Whether the broker is the real one (not replaced by FastStream's test broker)."""
        return self.broker is not None and isinstance(
            self.broker.config.producer, AioPikaFastProducerImpl
        )

    def _route(self, channel_number: int, routing_key: str) -> tuple[str, str | None, bytes]:
        """(exchange, app_id, marshalled ``Basic.Publish``) of a routing key's publisher."""
        key = (channel_number, routing_key)
        if (route := self._routes.get(key)) is None:
            publisher = self.publishers[routing_key]
            exchange = publisher.exchange.name
            method = amqp.Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=True)
            route = self._routes[key] = (
                exchange,
                publisher.message_options.get("app_id"),
                pamqp.frame.marshal(method, channel_number),
            )
        return route

    def _prepare(
        self, channel: AbstractChannel, m: OutboxMessage, now: datetime
    ) -> tuple[Span, str, bytes]:
        """The producer span and the marshalled AMQP frames of one message."""
        number = channel.number
        exchange, app_id, method_frame = self._route(number, m.routing_key)
        payload = m.payload
        message_id = str(payload["message_id"])
        correlation_id = str(payload.get("correlation_id") or message_id)
        body = orjson.dumps(payload)
        span = _TRACER.start_span(
            f"publish {exchange}",
            context=propagate.extract(m.headers or {}),
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "send",
                "messaging.operation.name": "publish",
                "messaging.destination.name": exchange,
                "messaging.rabbitmq.destination.routing_key": m.routing_key,
                "messaging.message.id": message_id,
                "messaging.message.conversation_id": correlation_id,
                "messaging.message.body.size": len(body),
            },
        )
        try:
            headers: dict[str, Any] = {"schema_version": payload.get("schema_version", 1)}
            propagate.inject(headers, context=trace.set_span_in_context(span))
            frames = [
                method_frame,
                content_header_frame(
                    number, len(body),
                    content_type="application/json",
                    headers=headers,
                    delivery_mode=PERSISTENT,
                    correlation_id=correlation_id,
                    message_id=message_id,
                    timestamp=now,
                    message_type=payload.get("message_type"),
                    app_id=app_id,
                ),
            ]
            size = channel.max_content_size
            frames += (
                _FRAME.pack(_BODY, number, len(chunk)) + chunk + _FRAME_END
                for chunk in (body[i:i + size] for i in range(0, len(body), size))
            )
        except BaseException as exc:
            _end_spans([span], [exc])
            raise
        return span, message_id, b"".join(frames)

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


# AMQP 0-9-1 wire format of a content header (section 4.2.6; basic class properties, 1.8.2).
# pamqp's generic marshalling of these properties cost ~3x the relay's own work per message, so
# the few properties an outbox publish sets are encoded here; tests/kit/test_outbox_frames.py
# proves the bytes equal pamqp's.
_FRAME = struct.Struct(">BHI")  # frame type, channel, payload size
_CONTENT_HEADER = struct.Struct(">HHQH")  # class id, weight, body size, property flags
_HEADER, _BODY, _FRAME_END, _BASIC = 2, 3, b"\xce", 60
_U32, _U64 = struct.Struct(">I"), struct.Struct(">Q")


def content_header_frame(
    channel_number: int,
    body_size: int,
    *,
    content_type: str,
    headers: dict[str, Any],
    delivery_mode: int,
    correlation_id: str,
    message_id: str,
    timestamp: datetime,
    message_type: str | None,
    app_id: str | None,
) -> bytes:
    """The marshalled content header frame of a publish with these basic properties (as pamqp,
    a property that is None or empty is left out)."""
    flags = 0
    parts = [b""]  # the fixed part, packed once the flags are known
    if content_type:
        flags |= 0x8000
        parts.append(_short_string(content_type))
    if headers is not None:
        flags |= 0x2000
        parts.append(_table(headers))
    if delivery_mode is not None:
        flags |= 0x1000
        parts.append(bytes((delivery_mode,)))
    if correlation_id:
        flags |= 0x0400
        parts.append(_short_string(correlation_id))
    if message_id:
        flags |= 0x0080
        parts.append(_short_string(message_id))
    if timestamp is not None:
        flags |= 0x0040
        parts.append(_U64.pack(calendar.timegm(timestamp.utctimetuple())))
    if message_type:
        flags |= 0x0020
        parts.append(_short_string(message_type))
    if app_id:
        flags |= 0x0008
        parts.append(_short_string(app_id))
    parts[0] = _CONTENT_HEADER.pack(_BASIC, 0, body_size, flags)
    payload = b"".join(parts)
    return _FRAME.pack(_HEADER, channel_number, len(payload)) + payload + _FRAME_END


def _table(table: dict[str, Any]) -> bytes:
    data = b"".join(
        _short_string(key, limit=128) + _table_value(value) for key, value in sorted(table.items())
    )
    return _U32.pack(len(data)) + data


def _table_value(value: Any) -> bytes:
    if isinstance(value, str):  # trace context: the common case, without pamqp's type dispatch
        data = value.encode()
        return b"S" + _U32.pack(len(data)) + data
    return encode.encode_table_value(value)


def _short_string(value: str, limit: int = 255) -> bytes:
    data = value.encode()
    if len(data) > limit:
        raise ValueError(f"AMQP short string longer than {limit} bytes: {value[:40]!r}...")
    return bytes((len(data),)) + data


def _done(outcomes: Outcomes) -> asyncio.Future[Outcomes]:
    future: asyncio.Future[Outcomes] = asyncio.get_running_loop().create_future()
    future.set_result(outcomes)
    return future


def _abandon(batch: PipelinedBatch, spans: list[Span]) -> None:
    """What a settle that never finished leaves behind: the batch's bookkeeping, its spans."""
    batch.release()
    _end_spans(spans, [asyncio.CancelledError("stopped before the broker's confirm")] * len(spans))
    spans.clear()


def _end_spans(spans: Sequence[Span], outcomes: Sequence[BaseException | None]) -> None:
    for span, outcome in zip(spans, outcomes, strict=True):
        if outcome is not None:
            span.set_status(Status(StatusCode.ERROR, repr(outcome)))
            span.set_attribute("error.type", type(outcome).__qualname__)
        span.end()


class PipelinedBatch:
    """Publishes written to an aiormq channel in one write, and their confirms.

    This is aiormq's ``Channel.basic_publish`` for a whole batch, with the same bookkeeping (a
    confirm future per publish sequence number, the message id that a ``Basic.Return`` is matched
    by) but one lock, one write and one task for the batch instead of per message. aiormq settles
    the futures as it does its own: ack -> ``Basic.Ack``, nack -> ``DeliveryError``, return ->
    ``PublishError`` (the channel raises on returns). Relies on aiormq's channel attributes
    (``lock``, ``write_queue``, ``delivery_tag``, ``confirmations``, ``message_id_delivery_tag``),
    pinned with aiormq in requirements.txt and proven by tests/kit's real-broker tests.
    """

    def __init__(
        self, channel: AbstractChannel, first_tag: int, message_ids: list[str],
        futures: list[asyncio.Future[Any]], guard: asyncio.Future[Any],
    ) -> None:
        self.channel = channel
        self.first_tag = first_tag
        self.message_ids = message_ids
        self.futures = futures
        self._guard = guard
        self._released = False
        guard.add_done_callback(self._channel_closed)

    @classmethod
    async def write(
        cls, channel: AbstractChannel, publishes: Sequence[tuple[bytes, str]]
    ) -> PipelinedBatch:
        """Write ``publishes`` (each its marshalled frames and message id) to ``channel``."""
        loop = asyncio.get_running_loop()
        # Plain futures: aiormq's own (``channel.create_future``) cost ~25 us each.
        futures = [loop.create_future() for _ in publishes]
        async with channel.lock:  # sequence numbers follow the order publishes reach the broker
            await channel.write_queue.put(
                ChannelFrame(payload=b"".join(f for f, _ in publishes), should_close=False)
            )
            # No await from here to the end of the block: the writer task has not sent these
            # frames yet, so no confirm or return for them can arrive before they are registered.
            first = channel.delivery_tag + 1
            channel.delivery_tag += len(publishes)
            for tag, (_, message_id), future in zip(
                range(first, first + len(publishes)), publishes, futures, strict=True
            ):
                channel.confirmations[tag] = future
                channel.message_id_delivery_tag[message_id] = tag
            # aiormq rejects the futures it made when the channel closes: one of them guards ours.
            guard = channel.create_future()
        return cls(channel, first, [mid for _, mid in publishes], futures, guard)

    def _channel_closed(self, guard: asyncio.Future[Any]) -> None:
        if guard.cancelled():
            return
        reason = guard.exception()
        for future in self.futures:
            if not future.done():
                future.set_exception(reason or ConnectionError("channel closed"))

    async def confirmed(self, timeout: float) -> Outcomes:
        """Wait for the confirms; for each publish None if the broker acked it, else why not."""
        try:
            await asyncio.wait(self.futures, timeout=timeout)
        finally:
            self.release()
        return [_confirm_outcome(f, timeout) for f in self.futures]

    def release(self) -> None:
        """Drop this batch's bookkeeping (once). What is not confirmed yet will not be for us:
        its late confirm or return lands in a stand-in, which then forgets it."""
        if self._released:
            return
        self._released = True
        self._guard.cancel()
        channel, loop = self.channel, asyncio.get_running_loop()
        tags = range(self.first_tag, self.first_tag + len(self.futures))
        for tag, message_id, future in zip(tags, self.message_ids, self.futures, strict=True):
            if future.done():
                _retrieve_exception(future)  # read, or asyncio logs it as never retrieved
                if channel.message_id_delivery_tag.get(message_id) == tag:
                    del channel.message_id_delivery_tag[message_id]
                continue
            if channel.confirmations.get(tag) is future:
                # aiormq would set a result on our cancelled future and fail: give it another
                stand_in = loop.create_future()
                stand_in.add_done_callback(partial(_forget_late, channel, message_id, tag))
                channel.confirmations[tag] = stand_in
            future.cancel()


def _forget_late(
    channel: AbstractChannel, message_id: str, tag: int, stand_in: asyncio.Future[Any]
) -> None:
    _retrieve_exception(stand_in)
    if channel.message_id_delivery_tag.get(message_id) == tag:
        del channel.message_id_delivery_tag[message_id]


def _retrieve_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _confirm_outcome(future: asyncio.Future[Any], timeout: float) -> BaseException | None:
    if future.cancelled():
        return TimeoutError(f"no confirm from the broker within {timeout} s")
    if (exc := future.exception()) is not None:
        return exc
    result = future.result()
    if isinstance(result, amqp.Basic.Ack):
        return None
    return RuntimeError(f"not acknowledged: {result!r}")


async def consume_once(
    db: Database,
    consumer: str,
    message: Envelope,
    handler: Callable[[Envelope, UnitOfWork], Awaitable[None]],
    *,
    at_once: Callable[[Database, str, Any], Awaitable[bool]] | None = None,
) -> bool:
    """Run ``handler(message, uow)`` once per message id for ``consumer``, and commit.

    Returns False for a duplicate delivery (nothing done). The inbox mark, the handler's state
    change and the messages it emits commit together. On PostgreSQL, a
    :class:`~kit.inbox.OneStatementHandler` runs as one statement with its inbox mark instead
    (same guarantees, one round trip). ``at_once(db, consumer, message)``, if given, is tried
    first: the handler's common case in one statement with its own inbox guard, True if it did
    it, False (having written nothing) to leave the message to ``handler``.
    """
    # Tag the consume span so the whole life of a booking can be found by its ids.
    set_span_attributes(**{
        f"{name.removesuffix('_id')}.id": getattr(message, name)
        for name in ("booking_id", "event_id", "user_id", "payment_id")
        if getattr(message, name, None) is not None
    })
    if at_once is not None and await at_once(db, consumer, message):
        return True
    if db.is_postgres and isinstance(handler, OneStatementHandler):
        return await apply_once(db, consumer, message.message_id, message, handler)
    async with db.unit_of_work() as uow:
        if not await first_delivery(uow, consumer, message.message_id):
            return False
        await handler(message, uow)
        await uow.commit()
    return True
