"""The committed AsyncAPI documents are what the code generates, and valid for other tools."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tools import asyncapi_docs
from contracts.messages import ALL_MESSAGES

ROOT = Path(__file__).resolve().parents[2]


def test_committed_documents_are_fresh(capsys):
    assert asyncapi_docs.check() == 0, capsys.readouterr().out


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_documents_pass_the_official_asyncapi_parser():
    result = subprocess.run(
        ["node", "asyncapi/validate.mjs"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_published_channel_documents_its_contract_schema():
    documented: dict[str, dict] = {}
    for path in (ROOT / "asyncapi").glob("*.yaml"):
        if path.name == "index.yaml":
            continue
        spec = yaml.safe_load(path.read_text())
        documented.update(spec["components"]["schemas"])
    for model in ALL_MESSAGES:
        schema = documented.get(model.__name__)
        if schema is None:
            continue  # not published by a service that exists yet
        assert schema["description"] == model.__doc__.strip()
        assert {"message_id", "occurred_at", "schema_version", "producer"} <= set(
            schema["properties"]
        )
