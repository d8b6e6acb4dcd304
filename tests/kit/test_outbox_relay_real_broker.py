"""The outbox relay's pipelined publishing, proven on the real RabbitMQ and PostgreSQL.

* What consumers receive is what the FastStream publisher path sent: persistent, the envelope's
  ids as AMQP properties, ``schema_version`` and W3C trace context in the headers, the payload as
  the body; and one trace runs from the request that wrote the row, through ONE producer span
  per message, to the consumer's FastStream span.
* A row leaves the outbox only once the broker confirmed its publish: a returned (unroutable)
  publish, a routing key without a publisher, a channel the broker closes, a lost or missing
  broker connection all leave their rows, and the relay recovers once the cause is gone.
* Overlapping rounds still hand batches to the broker in the order the rows were written.

Each test publishes to an exchange of its own, so nothing here reaches another test's queues.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import aio_pika
import pytest
from faststream.rabbit import ExchangeType, RabbitExchange, RabbitMessage, RabbitQueue
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from yarl import URL

from kit import outbox
from kit.broker import make_broker
from kit.publishing import OutboxPublisher, Publishers, declare_publishers, outbox_publish
from kit.outbox import OutboxRelay, RelayError
from kit.settings import ServiceSettings
from contracts.messages import EventCreated
from tests.kit.relaying import (
    run_until_published,
    SERVICE,
    UNROUTABLE,
    drain,
    event,
    outbox_rows,
    publishers_on,
    spy_queue,
    write_rows,
)
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))  # type: ignore[union-attr]
    return exporter


async def test_declared_publishers_know_their_broker() -> None:
    broker = make_broker(ServiceSettings(service_name=SERVICE))
    publishers = declare_publishers(broker, [EventCreated])
    assert publishers.broker is broker
    assert list(publishers) == [EventCreated.routing_key]


async def test_relayed_message_has_the_contract_properties_and_one_trace_to_the_consumer(
    spans, db, exchange, producer
) -> None:
    consumer = make_broker(ServiceSettings(service_name="relaytest-consumer"))
    received: list[RabbitMessage] = []

    @consumer.subscriber(
        RabbitQueue(
            f"{exchange.name}.events", routing_key=EventCreated.routing_key, auto_delete=True
        ),
        exchange,
    )
    async def on_event_created(msg: EventCreated, message: RabbitMessage) -> None:
        received.append(message)

    await consumer.start()
    try:
        messages = [event("traced-1"), event("traced-2")]
        with trace.get_tracer("test").start_as_current_span(
            "POST /events/create", kind=trace.SpanKind.SERVER
        ) as request:
            async with db.engine.begin() as conn:
                await outbox.write(conn, db, messages)  # stores the request's trace context
        spans.clear()

        relay = OutboxRelay(db, outbox_publish(producer))
        assert await relay.relay_once() == 2
        assert await outbox_rows(db) == {}
        await eventually(lambda: asyncio.sleep(0, len(received)), until=lambda n: n == 2)
    finally:
        await consumer.stop()

    by_id = {m.message_id: m for m in messages}
    finished = spans.get_finished_spans()
    producers = {
        s.attributes["messaging.message.id"]: s
        for s in finished
        if s.kind == trace.SpanKind.PRODUCER
    }
    consumers = [s for s in finished if s.kind == trace.SpanKind.CONSUMER]
    assert set(producers) == {str(m.message_id) for m in messages}  # one producer span each
    for message in received:
        sent = by_id[uuid.UUID(message.message_id)]
        raw = message.raw_message
        assert raw.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert raw.content_type == "application/json"
        assert raw.message_id == str(sent.message_id)
        assert raw.correlation_id == str(sent.correlation_id)
        assert raw.type == "event_created"
        assert raw.app_id == SERVICE
        assert raw.timestamp is not None
        assert raw.routing_key == EventCreated.routing_key
        assert raw.headers["schema_version"] == 1
        assert json.loads(raw.body) == sent.model_dump(mode="json")
        assert EventCreated.model_validate_json(raw.body) == sent

        span = producers[raw.message_id]
        assert span.name == f"publish {exchange.name}"
        assert span.parent.span_id == request.get_span_context().span_id
        assert span.context.trace_id == request.get_span_context().trace_id
        assert span.status.is_ok
        assert span.attributes["messaging.system"] == "rabbitmq"
        assert span.attributes["messaging.operation.type"] == "send"
        assert span.attributes["messaging.destination.name"] == exchange.name
        assert span.attributes["messaging.rabbitmq.destination.routing_key"] == "event_created"
        assert span.attributes["messaging.message.conversation_id"] == raw.correlation_id
        # the consumer's FastStream telemetry continued the trace from our producer span
        traceparent = raw.headers["traceparent"]
        assert traceparent.split("-")[1:3] == [
            f"{span.context.trace_id:032x}",
            f"{span.context.span_id:016x}",
        ]
        consume = next(
            s for s in consumers if s.attributes.get("messaging.message.id") == raw.message_id
        )
        assert consume.parent.span_id == span.context.span_id
        assert consume.context.trace_id == request.get_span_context().trace_id


async def test_returned_and_unpublishable_rows_stay_for_the_next_round(
    spans, db, exchange, producer, amqp
) -> None:
    queue = await spy_queue(amqp, exchange, EventCreated.routing_key)
    routable = [event("routable-1"), event("routable-2")]
    returned, unknown = event("unroutable"), event("no publisher")
    rows = outbox.rows_of(db, [*routable, returned, unknown])
    rows[2]["routing_key"] = UNROUTABLE  # its publisher exists, but no queue is bound to it
    rows[3]["routing_key"] = "no_publisher_for_this"
    await write_rows(db, rows)
    spans.clear()

    relay = OutboxRelay(db, outbox_publish(producer))
    with pytest.raises(RelayError, match="2 publishes failed"):
        await relay.relay_once()

    # deleted only what the broker confirmed; the others wait, their attempts counted
    assert await outbox_rows(db) == {
        returned.message_id: (UNROUTABLE, 1),
        unknown.message_id: ("no_publisher_for_this", 1),
    }
    assert (relay.published_total, relay.failed_total) == (2, 2)
    got = await drain(queue)
    assert sorted(m.message_id for m in got) == sorted(str(m.message_id) for m in routable)
    failed_span = next(
        s
        for s in spans.get_finished_spans()
        if s.attributes.get("messaging.message.id") == str(returned.message_id)
    )
    assert not failed_span.status.is_ok
    assert failed_span.attributes["error.type"] == "PublishError"

    # once something listens on that key, the next round publishes it (the other still waits)
    await spy_queue(amqp, exchange, UNROUTABLE)
    with pytest.raises(RelayError, match="1 publishes failed"):
        await relay.relay_once()
    assert await outbox_rows(db) == {unknown.message_id: ("no_publisher_for_this", 2)}


async def test_a_channel_the_broker_closes_keeps_the_batch_and_the_relay_recovers(
    db, amqp, exchange
) -> None:
    missing = RabbitExchange(f"outbox-test-missing-{uuid.uuid4().hex[:8]}", type=ExchangeType.TOPIC)
    broker = make_broker(ServiceSettings(service_name=SERVICE))
    publishers = Publishers(
        broker,
        {
            "to_missing": broker.publisher(exchange=missing, routing_key="to_missing"),
            EventCreated.routing_key: broker.publisher(
                exchange=exchange, routing_key="event_created"
            ),
        },
    )
    queue = await spy_queue(amqp, exchange, EventCreated.routing_key)
    good, lost = event("good"), event("to a missing exchange")
    rows = outbox.rows_of(db, [good, lost])
    rows[1]["routing_key"] = "to_missing"
    await write_rows(db, rows)
    await broker.connect()
    try:
        relay = OutboxRelay(db, outbox_publish(publishers))
        # the broker closes the channel (404 on the exchange): the publish to the missing
        # exchange fails; the other one is confirmed only if its ack came before the close
        with pytest.raises(RelayError, match="publishes failed"):
            await relay.relay_once()
        left = set(await outbox_rows(db))
        assert lost.message_id in left and left <= {good.message_id, lost.message_id}

        # the exchange appears; the channel is reopened and the next round publishes the rest
        await amqp.declare_exchange(missing.name, aio_pika.ExchangeType.TOPIC, durable=True)
        await spy_queue(amqp, missing, "to_missing")

        async def relay_round() -> int | None:
            try:
                return await relay.relay_once()
            except RelayError:
                return None

        assert await eventually(relay_round, until=lambda n: n == len(left)) == len(left)
        assert await outbox_rows(db) == {}
    finally:
        await broker.stop()
    # at least once: ``good`` may also have been routed before the channel closed
    got = await drain(queue)
    assert {m.message_id for m in got} == {str(good.message_id)}


async def test_a_lost_connection_keeps_the_rows_and_they_go_once_it_is_back(
    db, exchange, amqp, rabbitmq_url
) -> None:
    proxy = TcpProxy(target_port=URL(rabbitmq_url).port or 5672)
    await proxy.start()
    broker = make_broker(
        ServiceSettings(
            service_name=SERVICE, rabbitmq_url=str(URL(rabbitmq_url).with_port(proxy.port))
        )
    )
    publish = OutboxPublisher(publishers_on(broker, exchange), channel_timeout=0.5)
    queue = await spy_queue(amqp, exchange, EventCreated.routing_key)
    before, during = event("before the outage"), event("during the outage")
    await broker.connect()
    try:
        relay = OutboxRelay(db, publish)
        await write_rows(db, outbox.rows_of(db, [before]))
        assert await relay.relay_once() == 1  # the relay's channel is open

        await proxy.cut()
        await write_rows(db, outbox.rows_of(db, [during]))
        for _ in range(2):  # the round fails (it does not wait for the broker); the row stays
            with pytest.raises(RelayError):
                await relay.relay_once()
        assert set(await outbox_rows(db)) == {during.message_id}

        await proxy.start()

        async def relay_round() -> int | None:
            try:
                return await relay.relay_once()
            except RelayError:
                return None

        await eventually(relay_round, until=lambda n: n == 1, timeout=30, interval=0.2)
        assert await outbox_rows(db) == {}
    finally:
        await broker.stop()
        await proxy.cut()
    got = await drain(queue)
    assert [m.message_id for m in got] == [str(before.message_id), str(during.message_id)]


async def test_without_a_reachable_broker_nothing_is_deleted(db, exchange) -> None:
    # the relay connects the broker if nobody did yet: here there is nothing to connect to
    broker = make_broker(
        ServiceSettings(service_name=SERVICE, rabbitmq_url="amqp://guest:guest@127.0.0.1:1/")
    )
    await write_rows(db, outbox.rows_of(db, [event("offline")]))
    relay = OutboxRelay(db, outbox_publish(publishers_on(broker, exchange)))
    with pytest.raises(RelayError):
        await relay.relay_once()
    assert [attempts for _, attempts in (await outbox_rows(db)).values()] == [1]


async def test_a_returned_or_nacked_publish_fails_alone_the_rest_of_its_batch_is_confirmed(
    spans, exchange, amqp
) -> None:
    """The publisher's own outcome per message, on a batch with its failures in the middle."""
    queue = await spy_queue(amqp, exchange, EventCreated.routing_key)
    # a queue that takes nothing: the broker nacks every publish routed only to it
    full = await amqp.declare_queue(
        exclusive=True, arguments={"x-max-length": 0, "x-overflow": "reject-publish"}
    )
    await full.bind(exchange.name, "to_a_full_queue")
    broker = make_broker(ServiceSettings(service_name=SERVICE))
    publishers = publishers_on(broker, exchange)
    publishers["to_a_full_queue"] = broker.publisher(
        exchange=exchange, routing_key="to_a_full_queue", persist=True, mandatory=True
    )
    publish = OutboxPublisher(publishers)
    ok = [event(f"confirmed-{i}") for i in range(3)]
    returned, nacked = event("returned"), event("nacked")
    batch = [
        (EventCreated.routing_key, ok[0]),
        (UNROUTABLE, returned),
        (EventCreated.routing_key, ok[1]),
        ("to_a_full_queue", nacked),
        (EventCreated.routing_key, ok[2]),
    ]
    await broker.connect()
    try:
        spans.clear()
        outcomes = await publish.publish_many(
            [outbox.OutboxMessage(key, m.model_dump(mode="json"), {}) for key, m in batch]
        )
    finally:
        await broker.stop()
    assert [type(o).__name__ for o in outcomes] == [
        "NoneType",
        "PublishError",
        "NoneType",
        "DeliveryError",
        "NoneType",
    ]
    assert [m.message_id for m in await drain(queue)] == [str(m.message_id) for m in ok]
    failed = {
        s.attributes["messaging.message.id"]: s.attributes.get("error.type")
        for s in spans.get_finished_spans()
        if not s.status.is_ok
    }
    assert failed == {
        str(returned.message_id): "PublishError",
        str(nacked.message_id): "DeliveryError",
    }


async def test_overlapping_rounds_publish_in_the_order_rows_were_written(
    db, exchange, producer, amqp
) -> None:
    queue = await spy_queue(amqp, exchange, EventCreated.routing_key)
    messages = [event(f"ordered-{i}") for i in range(60)]
    for m in messages:  # one transaction each: created_at orders them
        await write_rows(db, outbox.rows_of(db, [m]))
    relay = OutboxRelay(db, outbox_publish(producer), batch_size=7, pipeline_depth=3)
    await run_until_published(relay, 60)
    assert await outbox_rows(db) == {}
    got = await drain(queue)
    assert [m.message_id for m in got] == [str(m.message_id) for m in messages]
