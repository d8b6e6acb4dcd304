"""One trace from an HTTP request, through the outbox, to a consumer (TestRabbitBroker,
in-memory span exporter)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from faststream.rabbit import TestRabbitBroker
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from apps.events.bootstrap import build as build_events
from tests.conftest import http_client
from tests.support import probe
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
                    "/events/create", headers=bearer(mint(role="organizer")),
                    json={"title": "traced", "venue": "Hall", "capacity": 3, "price": "1.00",
                          "currency": "EUR",
                          "starts_at": (datetime.now(UTC) + timedelta(days=2)).isoformat()},
                )
            assert resp.status_code == 201
            assert await events.relay.relay_once() == 1
    await consumer.db.dispose()

    finished = spans.get_finished_spans()
    server = next(s for s in finished if s.kind == trace.SpanKind.SERVER and "/events/create" in s.name)
    publish = next(s for s in finished if s.kind == trace.SpanKind.PRODUCER)
    consume = next(s for s in finished if s.kind == trace.SpanKind.CONSUMER)
    trace_id = server.context.trace_id
    # one trace: request -> (outbox, later) publish -> consume
    assert publish.context.trace_id == trace_id and consume.context.trace_id == trace_id
    assert publish.parent is not None and publish.parent.span_id == server.context.span_id
    assert consume.parent is not None and consume.parent.span_id == publish.context.span_id
    assert server.attributes.get("event.id") == resp.json()["id"]
