"""One telemetry set-up for every process of the platform (FastAPI services, gateway, Django).

``configure_telemetry(service_name)`` installs the tracer provider (resource ``service.name``,
standard ``OTEL_*`` variables honoured, OTLP export when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set)
and structured JSON logs that carry ``trace_id``/``span_id``.
"""

from observability.logs import configure_logging
from observability.tracing import configure_tracing, current_trace_id, set_span_attributes


def configure_telemetry(service_name: str, *, log_level: str = "INFO", log_format: str = "json"):  # noqa: ANN201
    provider = configure_tracing(service_name)
    configure_logging(service_name, level=log_level, fmt=log_format)
    return provider


__all__ = [
    "configure_logging",
    "configure_telemetry",
    "configure_tracing",
    "current_trace_id",
    "set_span_attributes",
]
