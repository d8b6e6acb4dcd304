"""Every service's process entry point (``apps.<service>.main``) is the kit's one helper,
``kit.process.process_service``: it builds the service, tunes the process and configures
telemetry, and the module exposes what uvicorn (``:app``) and ``faststream docs gen``
(``:stream``) load. Each case imports the entry point in a fresh interpreter (telemetry and
niceness are the process's)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.fresh import run_python

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["events", "booking", "payments", "notifications", "analytics"]


@pytest.mark.parametrize("service", SERVICES)
def test_entry_point_exposes_the_built_service(service: str) -> None:
    code = (
        "import logging\n"
        "from fastapi import FastAPI\n"
        "from faststream import FastStream\n"
        "from kit.service import Service\n"
        f"import apps.{service}.main as main\n"
        "assert isinstance(main.service, Service)\n"
        "assert isinstance(main.app, FastAPI) and main.app is main.service.api\n"
        "assert isinstance(main.stream, FastStream) and main.stream is main.service.stream\n"
        f"assert main.service.spec.name == {service!r}\n"
        "print(logging.getLogger().level)\n"
    )
    out = run_python(code, LOG_LEVEL="WARNING")
    assert out.returncode == 0, out.stderr
    # telemetry (logging) is configured from the service's own settings
    assert out.stdout.split()[-1] == str(30)


def test_entry_points_are_the_kit_helper() -> None:
    for service in SERVICES:
        source = (ROOT / "apps" / service / "main.py").read_text()
        statements = [
            node
            for node in ast.parse(source).body
            if not isinstance(node, ast.Import | ast.ImportFrom)
            and not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
        ]
        assert "process_service(build)" in source, service
        assert len(statements) <= 2, service
