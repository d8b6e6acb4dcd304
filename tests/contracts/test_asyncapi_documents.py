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


# --- AsyncAPI 3.0, names by rule (kit.asyncapi), the platform document -----------------------

ROUTING_KEYS = {m.routing_key for m in ALL_MESSAGES}
SERVICE_FILES = sorted(set(asyncapi_docs.SERVICES))


def _load(name: str) -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load((ROOT / "asyncapi" / f"{name}.yaml").read_text(), Loader=loader)  # noqa: S506


@pytest.mark.parametrize("name", [*SERVICE_FILES, "platform"])
def test_documents_are_asyncapi_3_named_by_routing_key_and_contract(name):
    spec = _load(name)
    assert spec["asyncapi"] == "3.0.0"
    assert spec["channels"], name
    for key, channel in spec["channels"].items():
        # the channel is its routing key (the fanout `analytics` channel: its exchange/queue)
        assert channel["address"] == key
        assert key in ROUTING_KEYS or key == "analytics", key
        for message_name, ref in channel["messages"].items():
            assert ref == {"$ref": f"#/components/messages/{message_name}"}
    prefixes = SERVICE_FILES if name == "platform" else [name]
    for op_id, operation in spec["operations"].items():
        channel = operation["channel"]["$ref"].rsplit("/", 1)[1]
        assert op_id in {f"{p}_{operation['action']}_{channel}" for p in prefixes}, op_id
        assert operation["action"] in ("send", "receive")
        for ref in operation["messages"]:
            assert ref["$ref"].startswith(f"#/channels/{channel}/messages/")
    for text in (yaml.safe_dump(spec),):
        assert ":publish" not in text and ":SubscribeMessage" not in text
        assert ":consume" not in text


def test_every_message_is_named_by_its_contract_and_has_an_example_that_parses():
    from pydantic import TypeAdapter

    from contracts.messages import AnalyticsFact

    models = {m.__name__: m for m in ALL_MESSAGES}
    platform = _load("platform")
    messages = platform["components"]["messages"]
    assert set(models) - {"NotificationRequested"} <= set(messages)  # every published contract
    for name, message in messages.items():
        assert message["name"] == name
        (example,) = message["examples"]
        if name == "AnalyticsMessage":
            parsed = TypeAdapter(AnalyticsFact).validate_python(example["payload"])
        else:
            parsed = models[name].model_validate(example["payload"])
            assert parsed.routing_key in platform["channels"]
        assert parsed.message_id


def test_the_platform_document_has_every_services_operations():
    platform = _load("platform")
    for name in SERVICE_FILES:
        own = _load(name)
        assert set(own["operations"]) <= set(platform["operations"]), name
        assert set(own["channels"]) <= set(platform["channels"]), name
    # each receive operation names the queue it is consumed from
    receives = [op for op in platform["operations"].values() if op["action"] == "receive"]
    assert receives and all("queue `" in op["summary"] for op in receives)


def test_the_check_fails_when_a_document_is_stale(tmp_path, monkeypatch, capsys):
    for path in (ROOT / "asyncapi").glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text())
    monkeypatch.setattr(asyncapi_docs, "OUT", tmp_path)
    assert asyncapi_docs.check() == 0
    stale = tmp_path / "platform.yaml"
    stale.write_text(stale.read_text().replace("booking_send_booking_created", "old_name"))
    assert asyncapi_docs.check() == 1
    (tmp_path / "index.yaml").write_text("left: over\n")
    stale.write_text((ROOT / "asyncapi" / "platform.yaml").read_text())
    assert asyncapi_docs.check() == 1  # a file nothing generates is stale too
    assert "index.yaml" in capsys.readouterr().out


def _waitlist(publishes: bool) -> dict:
    from faststream.rabbit import RabbitBroker, RabbitQueue
    from faststream.specification import AsyncAPI

    from contracts.messages import BookingCancelled, UserRegistered
    from contracts.topology import DOMAIN_EXCHANGE
    from kit.asyncapi import ServiceAsyncAPI
    from kit.publishing import declare_publishers

    broker = RabbitBroker("amqp://guest:guest@rabbitmq:5672/")

    @broker.subscriber(
        RabbitQueue("waitlist.booking_cancelled", routing_key="booking_cancelled"),
        DOMAIN_EXCHANGE,
    )
    async def on_booking_cancelled(message: BookingCancelled) -> None:
        """Offers the freed seats to the waiting list."""

    declare_publishers(broker, [BookingCancelled] if publishes else [UserRegistered])
    api = AsyncAPI(broker, title="Waiting list", version="1", schema_version="3.0.0")
    return ServiceAsyncAPI("waitlist", api).to_specification().to_jsonable()


def test_the_naming_rule_covers_subscribers_and_publishers_added_later():
    doc = _waitlist(publishes=False)
    assert doc["asyncapi"] == "3.0.0"
    assert sorted(doc["channels"]) == ["booking_cancelled", "user_registered"]
    consumed = doc["channels"]["booking_cancelled"]
    assert consumed["address"] == "booking_cancelled"
    assert consumed["bindings"]["amqp"]["queue"]["name"] == "waitlist.booking_cancelled"
    assert consumed["x-exchange"]["name"] == "eventbooking"
    assert sorted(doc["operations"]) == [
        "waitlist_receive_booking_cancelled",
        "waitlist_send_user_registered",
    ]
    assert sorted(doc["components"]["messages"]) == ["BookingCancelled", "UserRegistered"]
    assert all(m["examples"] for m in doc["components"]["messages"].values())
    # one service consuming and publishing the same routing key: refused, not silently merged
    with pytest.raises(ValueError, match="two channels"):
        _waitlist(publishes=True)
