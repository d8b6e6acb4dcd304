"""One trace from an HTTP request, through the outbox, to a consumer (TestRabbitBroker,
in-memory span exporter)."""

from __future__ import annotations


import pytest
from faststream.rabbit import TestRabbitBroker
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from apps.events.bootstrap import build as build_events
from tests.conftest import http_client
from tests.support import probe
from tests.support.api_bodies import event_body
from tests.support.tokens import bearer, mint


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
        provider = trace.get_tracer_provider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))  # type: ignore[union-attr]
    return exporter


async def test_request_outbox_publish_and_consume_form_one_tree(spans, start_service):
    consumer = probe.build()
    await consumer.db.prepare()
    async with consumer.db.engine.begin() as conn:
        await conn.run_sync(probe.metadata.create_all)
    async with start_service(build_events, connect_broker=False, outbox_relay=False) as events:
        async with TestRabbitBroker(events.broker, consumer.broker):
            spans.clear()
            async with http_client(events) as client:
                resp = await client.post(
                    "/events/create",
                    headers=bearer(mint(role="organizer")),
                    json=event_body(title="traced"),
                )
            assert resp.status_code == 201
            assert await events.relay.relay_once() == 1
    await consumer.db.dispose()

    finished = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    server = next(
        s for s in finished if s.kind == trace.SpanKind.SERVER and "/events/create" in s.name
    )
    # the consumer's span is in the request's trace (other spans, e.g. the relay's own
    # polling queries, live in their own traces)
    consume = next(
        s
        for s in finished
        if s.kind == trace.SpanKind.CONSUMER and s.context.trace_id == server.context.trace_id
    )

    # walk up from the consumer: it hangs off a producer span, which (through the outbox row's
    # stored context) hangs off the HTTP request's span
    chain, span = [], consume
    while span.parent is not None:
        span = by_id[span.parent.span_id]  # KeyError here would be an orphan
        chain.append(span.kind)
    assert span is server
    assert trace.SpanKind.PRODUCER in chain
    assert server.attributes.get("event.id") == resp.json()["id"]
