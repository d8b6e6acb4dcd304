"""Logs are one JSON object per line and carry the current trace and span ids."""

from __future__ import annotations

import json
import logging

from opentelemetry.sdk.trace import TracerProvider

from observability import configure_logging


def test_log_lines_are_json_with_trace_context(capsys):
    root = logging.getLogger()
    before = list(root.handlers), root.level
    try:
        configure_logging("booking", level="INFO", fmt="json")
        tracer = TracerProvider().get_tracer("test")
        with tracer.start_as_current_span("work") as span:
            logging.getLogger("apps.booking").info("seats held", extra={"booking_id": "b-1"})
        ctx = span.get_span_context()
        line = next(
            json.loads(row) for row in capsys.readouterr().out.splitlines() if "seats held" in row
        )
        assert line["message"] == "seats held" and line["level"] == "INFO"
        assert line["service"] == "booking" and line["logger"] == "apps.booking"
        assert (
            line["trace_id"] == f"{ctx.trace_id:032x}" and line["span_id"] == f"{ctx.span_id:016x}"
        )
        assert line["booking_id"] == "b-1"
    finally:
        for h in list(root.handlers):
            if h not in before[0]:
                root.removeHandler(h)
        root.setLevel(before[1])
