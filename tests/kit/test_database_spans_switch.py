"""Spans recorded only when exported: the per-statement database instrumentation (asyncpg for
the services, psycopg for Django) is installed by ``configure_tracing`` only when an exporter is
configured. Each case runs in a fresh interpreter: tracing is configured once per process."""

from __future__ import annotations

import json

import pytest

from tests.support.fresh import run_python

PROBE = """
import json, os
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
from observability.tracing import configure_tracing

configure_tracing("spans-switch-test")
print(json.dumps({
    "asyncpg": AsyncPGInstrumentor().is_instrumented_by_opentelemetry,
    "psycopg": PsycopgInstrumentor().is_instrumented_by_opentelemetry,
}), flush=True)
os._exit(0)  # no flush of spans to the (absent) collector at exit
"""


def instrumented(**env: str) -> dict[str, bool]:
    out = run_python(PROBE, drop=lambda name: name.startswith("OTEL_"), check=True, **env)
    found = json.loads(out.stdout.strip().splitlines()[-1])
    return {"asyncpg": found["asyncpg"], "psycopg": found["psycopg"]}


def test_without_an_exporter_no_statement_is_instrumented() -> None:
    assert instrumented() == {"asyncpg": False, "psycopg": False}
    assert instrumented(
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_TRACES_EXPORTER="none"
    ) == {"asyncpg": False, "psycopg": False}


@pytest.mark.parametrize(
    "endpoint", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
)
def test_with_an_exporter_every_statement_gets_a_span(endpoint: str) -> None:
    assert instrumented(**{endpoint: "http://127.0.0.1:9"}) == {"asyncpg": True, "psycopg": True}
    # the standard switch still turns a driver's spans off
    assert instrumented(
        **{endpoint: "http://127.0.0.1:9", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "asyncpg"}
    ) == {"asyncpg": False, "psycopg": True}
