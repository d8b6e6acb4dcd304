"""The gateway's spans join the caller's trace, the upstream call carries it on, and every
response names the trace in X-Trace-Id."""

from __future__ import annotations

import re

from tests.gateway.conftest import Stack, gateway_stack
from tests.support.tokens import bearer, mint

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
HEX32 = re.compile(r"^[0-9a-f]{32}$")


async def test_incoming_traceparent_is_honoured_and_carried_upstream(stack: Stack) -> None:
    resp = await stack.client.get(
        "/booking/b-1", headers={**bearer(mint()), "traceparent": f"00-{TRACE_ID}-{PARENT}-01"}
    )
    assert resp.status_code == 200
    assert resp.headers["x-trace-id"] == TRACE_ID
    sent = stack.upstreams["booking"].requests[0].all("traceparent")
    assert len(sent) == 1
    version, trace_id, parent_id, _flags = sent[0].split("-")
    assert trace_id == TRACE_ID
    assert parent_id != PARENT  # the gateway's own span sits between the caller and the service


async def test_without_traceparent_the_trace_starts_at_the_gateway(stack: Stack) -> None:
    resp = await stack.client.get("/booking/b-1", headers=bearer(mint()))
    trace_id = resp.headers["x-trace-id"]
    assert HEX32.match(trace_id)
    sent = stack.upstreams["booking"].requests[0].header("traceparent")
    assert sent is not None and sent.split("-")[1] == trace_id


async def test_every_answer_carries_a_trace_id(echoes) -> None:
    async with gateway_stack(echoes, dead=("payments",), max_body_bytes=10) as s:
        answers = {
            "ok": await s.client.get("/events"),
            "401": await s.client.get("/booking"),
            "404": await s.client.get("/nowhere"),
            "413": await s.client.post("/booking/x", content=b"y" * 11, headers=bearer(mint())),
            "503": await s.client.get("/payments/p-1", headers=bearer(mint())),
            "health": await s.client.get("/health"),
            "docs": await s.client.get("/docs"),
        }
        for name, resp in answers.items():
            assert HEX32.match(resp.headers.get("x-trace-id", "")), name
        assert answers["401"].status_code == 401 and answers["503"].status_code == 503
        assert len({r.headers["x-trace-id"] for r in answers.values()}) == len(answers)


async def test_error_answers_keep_the_callers_trace_id(stack: Stack) -> None:
    resp = await stack.client.get("/booking", headers={"traceparent": f"00-{TRACE_ID}-{PARENT}-01"})
    assert resp.status_code == 401
    assert resp.headers["x-trace-id"] == TRACE_ID


async def test_span_tree_caller_gateway_server_client_service(stack: Stack) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from tests.support.waiting import eventually

    exporter = InMemorySpanExporter()
    trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))
    resp = await stack.client.get(
        "/booking/b-1", headers={**bearer(mint()), "traceparent": f"00-{TRACE_ID}-{PARENT}-01"}
    )
    assert resp.status_code == 200

    async def gateway_spans():
        return [
            s for s in exporter.get_finished_spans() if f"{s.context.trace_id:032x}" == TRACE_ID
        ]

    spans = await eventually(gateway_spans, until=lambda found: len(found) >= 2)
    server = next(s for s in spans if s.kind == SpanKind.SERVER)
    client = next(s for s in spans if s.kind == SpanKind.CLIENT)
    assert f"{server.parent.span_id:016x}" == PARENT
    assert client.parent.span_id == server.context.span_id
    assert server.name == "GET /booking/{path}"
    assert server.attributes["http.response.status_code"] == 200
    assert client.attributes["http.response.status_code"] == 200
    # The service was called with the client span as its parent.
    sent = stack.upstreams["booking"].requests[0].header("traceparent")
    assert sent.split("-")[2] == f"{client.context.span_id:016x}"
    exporter.shutdown()


async def test_an_unknown_method_names_no_span(stack: Stack) -> None:
    # Span names and the method attribute feed metrics derived from traces: a client inventing
    # methods must not create names without bound (OpenTelemetry's conventions: "_OTHER", and
    # "HTTP" in the name; the method as sent is kept in http.request.method_original).
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from tests.support.waiting import eventually

    exporter = InMemorySpanExporter()
    trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))
    resp = await stack.client.request(
        "PROPFIND", "/booking/b-1", headers={"traceparent": f"00-{TRACE_ID}-{PARENT}-01"}
    )
    assert resp.status_code == 405

    async def server_spans():
        return [
            s
            for s in exporter.get_finished_spans()
            if f"{s.context.trace_id:032x}" == TRACE_ID and s.kind == SpanKind.SERVER
        ]

    (server,) = await eventually(server_spans)
    assert server.name == "HTTP /booking/{path}"
    assert server.attributes["http.request.method"] == "_OTHER"
    assert server.attributes["http.request.method_original"] == "PROPFIND"
    exporter.shutdown()
