"""Generate, check and list the AsyncAPI 3.0 documents (committed under ``asyncapi/``).

    python -m tools.asyncapi_docs write     # regenerate asyncapi/*.yaml
    python -m tools.asyncapi_docs check     # fail if the committed files differ

One document per service, built from its FastStream app exactly as the running service serves
it at ``/asyncapi.json`` (names by the rule of ``kit.asyncapi``), with a canonical broker
address so the output does not depend on the machine it was generated on; and
``platform.yaml``, the whole bus in one document: every channel (named by its routing key) with
its messages, every service's send and receive operations.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from pathlib import Path
from typing import Any

import yaml

from kit.settings import API_VERSION

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "asyncapi"
CANONICAL_BROKER = "amqp://guest:guest@rabbitmq:5672/"
PLATFORM = "platform.yaml"

# service name -> module whose build(**overrides) returns a kit Service (or an object with
# an `asyncapi` attribute)
SERVICES: dict[str, str] = {
    "events": "apps.events.bootstrap",
    "analytics": "apps.analytics.bootstrap",
    "notifications": "apps.notifications.bootstrap",
    "payments": "apps.payments.bootstrap",
    "booking": "apps.booking.bootstrap",
    "auth": "auth.relay",
}

PLATFORM_DESCRIPTION = """\
Every message on the event booking platform's RabbitMQ, in one document.

Producers publish to the topic exchange `eventbooking` with the channel's address as routing
key, inside an envelope (`message_id`, `occurred_at`, `schema_version`, `producer`,
`correlation_id`, `causation_id`) and with W3C trace context in the headers; each consuming
service reads a channel from a durable quorum queue of its own (`<service>.<routing key>`,
named in each receive operation), dead-lettered to `<queue>.dlq` through `eventbooking.dlx`.
The `analytics` fanout exchange gets a copy of every fact analytics counts. Delivery is at
least once: consumers de-duplicate on `message_id`.

Operations are named `<service>_send_<channel>` and `<service>_receive_<channel>`; each
service's own document (`asyncapi/<service>.yaml`, `/asyncapi` on the service) holds its part."""


def service_documents() -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    for name, module_path in SERVICES.items():
        module = importlib.import_module(module_path)
        service: Any = module.build(rabbitmq_url=CANONICAL_BROKER)
        docs[name] = service.asyncapi.to_specification().to_jsonable()
    return docs


def platform_document(docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The services' documents as one: channels from their producers (a channel nobody in the
    platform publishes, from its consumer), every operation, the union of the components."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    components: dict[str, dict[str, Any]] = {"messages": {}, "schemas": {}}
    servers: dict[str, Any] = {}
    # producers first, so a channel's own description and bindings are its producer's
    ordered = sorted(
        ((name, key, ch) for name, doc in docs.items() for key, ch in doc["channels"].items()),
        key=lambda t: (not _sends(docs[t[0]], t[1]), t[0]),
    )
    for name, key, channel in ordered:
        if key in channels:
            channels[key]["messages"].update(channel["messages"])
        else:
            channels[key] = channel
    for name, doc in sorted(docs.items()):
        servers.update(doc.get("servers") or {})
        for op_id, operation in doc["operations"].items():
            operation = dict(operation)
            if operation["action"] == "receive":
                queue = (doc["channels"][_channel(operation)].get("bindings") or {}).get("amqp")
                queue_name = ((queue or {}).get("queue") or {}).get("name")
                if queue_name:
                    operation["summary"] = f"{name} consumes it from the queue `{queue_name}`"
            if op_id in operations:
                raise ValueError(f"operation {op_id} is defined twice")
            operations[op_id] = operation
        for section in ("messages", "schemas"):
            for key, value in (doc.get("components", {}).get(section) or {}).items():
                if components[section].setdefault(key, value) != value:
                    raise ValueError(f"{section} {key!r} differs between services ({name})")
    return {
        "asyncapi": "3.0.0",
        "id": "urn:eventbooking:platform",
        "info": {
            "title": "Event booking platform: the message bus",
            "version": API_VERSION,
            "description": PLATFORM_DESCRIPTION,
            "license": {"name": "MIT", "url": "https://opensource.org/license/mit"},
            "tags": [{"name": "eventbooking"}],
        },
        "defaultContentType": "application/json",
        "servers": servers,
        "channels": channels,
        "operations": operations,
        "components": components,
    }


def _channel(operation: dict[str, Any]) -> str:
    return str(operation["channel"]["$ref"].rsplit("/", 1)[1])


def _sends(doc: dict[str, Any], channel: str) -> bool:
    return any(
        op["action"] == "send" and _channel(op) == channel for op in doc["operations"].values()
    )


def _dump(doc: dict[str, Any]) -> str:
    return str(yaml.safe_dump(doc, sort_keys=True, allow_unicode=True))


def documents() -> dict[str, str]:
    docs = service_documents()
    files = {f"{name}.yaml": _dump(doc) for name, doc in docs.items()}
    files[PLATFORM] = _dump(platform_document(docs))
    return files


def write() -> None:
    OUT.mkdir(exist_ok=True)
    files = documents()
    for filename, text in files.items():
        (OUT / filename).write_text(text)
        print(f"wrote asyncapi/{filename}")
    for old in OUT.glob("*.yaml"):
        if old.name not in files:
            old.unlink()
            print(f"removed asyncapi/{old.name}")


def check() -> int:
    stale = 0
    files = documents()
    for filename, text in files.items():
        path = OUT / filename
        current = path.read_text() if path.exists() else ""
        if current != text:
            stale += 1
            sys.stdout.writelines(
                difflib.unified_diff(
                    current.splitlines(True),
                    text.splitlines(True),
                    f"asyncapi/{filename} (committed)",
                    f"asyncapi/{filename} (generated)",
                    n=1,
                )
            )
    for old in OUT.glob("*.yaml"):
        if old.name not in files:
            stale += 1
            print(f"asyncapi/{old.name} is generated by nothing")
    if stale:
        print(f"\n{stale} AsyncAPI document(s) are stale: run `make asyncapi` and commit.")
        return 1
    print("asyncapi/ is up to date")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["write", "check"])
    args = parser.parse_args()
    if args.command == "write":
        write()
        return 0
    return check()


if __name__ == "__main__":
    raise SystemExit(main())
