"""Spans are recorded only once something receives them; the trace still flows before that."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from observability.tracing import ExportAwareTracerProvider


def test_without_an_exporter_spans_are_not_recorded_but_continue_the_trace():
    provider = ExportAwareTracerProvider()
    tracer = provider.get_tracer("test")
    parent = tracer.start_span("incoming")
    child = tracer.start_span("outgoing", context=trace.set_span_in_context(parent))

    assert not parent.is_recording() and not child.is_recording()
    assert parent.get_span_context().is_valid
    assert child.get_span_context().trace_id == parent.get_span_context().trace_id
    assert child.get_span_context().span_id != parent.get_span_context().span_id
    assert not child.get_span_context().trace_flags.sampled


def test_adding_an_exporter_starts_recording_on_tracers_made_before():
    provider = ExportAwareTracerProvider()
    tracer = provider.get_tracer("test")  # before the exporter, as a service's middleware is
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    with tracer.start_as_current_span("recorded") as span:
        assert span.is_recording()
    assert [s.name for s in exporter.get_finished_spans()] == ["recorded"]


def test_the_configured_sampler_decides_once_exporting(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    provider = ExportAwareTracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    with provider.get_tracer("test").start_as_current_span("sampled out") as span:
        assert not span.is_recording()
    assert exporter.get_finished_spans() == ()
    assert "AlwaysOffSampler" in provider.sampler.get_description()
