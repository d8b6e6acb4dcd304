"""The AsyncAPI 3.0 documents of the services, with names made by one rule.

FastStream 0.7.8 generates AsyncAPI 3.0 (``schema_version="3.0.0"``), with each channel's
``address`` the routing key, but names things after its own objects: channels and operations
``payment_failed:publish`` or ``payments.booking_created:eventbooking:OnBookingCreated``, messages
``...:SubscribeMessage``. :func:`conventional` renames them by rule, from the contracts alone, so
every service (and messages added later) is named the same way:

- a channel is named by its routing key, and its ``address`` is that key (a fanout channel
  without one, ``analytics``, by its queue);
- an operation is ``<service>_send_<routing key>`` or ``<service>_receive_<routing key>``
  (unique across the platform, see ``tools.asyncapi_docs``), described like its channel;
- a message is named by its contract (``BookingCreated``; a mixed channel's union
  ``<Channel>Message``) and carries an example: the payload schema's own (``contracts.envelope``).

:class:`ServiceAsyncAPI` wraps FastStream's ``AsyncAPI`` so that ``/asyncapi.json``,
``/asyncapi.yaml``, the HTML page and the committed documents all serve the renamed document.
"""

from __future__ import annotations

import copy
import inspect
import json
from typing import Any

import yaml
from faststream.specification import AsyncAPI

SCHEMA_VERSION = "3.0.0"
CHANNELS = "#/channels/"
MESSAGES = "#/components/messages/"
SCHEMAS = "#/components/schemas/"


class Document:
    """An AsyncAPI document as plain data, with FastStream's ``Specification`` methods (what
    ``get_asyncapi_html`` and the routes call)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    @property
    def title(self) -> str:
        return str(self.data.get("info", {}).get("title", ""))

    def to_jsonable(self) -> dict[str, Any]:
        return self.data

    def to_json(self) -> str:
        return json.dumps(self.data)

    def to_yaml(self) -> str:
        return str(yaml.safe_dump(self.data, sort_keys=True, allow_unicode=True))


class ServiceAsyncAPI:
    """FastStream's generator, then :func:`conventional`."""

    def __init__(self, service: str, spec: AsyncAPI) -> None:
        self.service = service
        self.spec = spec

    def to_specification(self) -> Document:
        generated = json.loads(self.spec.to_specification().to_json())
        return Document(conventional(self.service, generated, self._exchanges()))

    def _exchanges(self) -> dict[str, dict[str, Any]]:
        """Queue name -> the exchange it is bound to (AsyncAPI 3.0 output drops it)."""
        found = {}
        for broker in self.spec.brokers:
            for sub in broker.subscribers:
                queue, exchange = getattr(sub, "queue", None), getattr(sub, "exchange", None)
                if queue is not None and exchange is not None and exchange.name:
                    found[queue.name] = {
                        "name": exchange.name,
                        "type": getattr(exchange.type, "value", str(exchange.type)),
                        "durable": bool(exchange.durable),
                    }
        return found


def _camel(key: str) -> str:
    return "".join(part.capitalize() for part in key.replace(".", "_").split("_") if part)


def _routing_key(channel: dict[str, Any], key: str) -> str:
    if channel.get("address"):
        return str(channel["address"])
    amqp = (channel.get("bindings") or {}).get("amqp") or {}
    name = (amqp.get("queue") or amqp.get("exchange") or {}).get("name")
    return str(name or key)


def _example(payload: dict[str, Any], schemas: dict[str, Any]) -> Any:
    """The payload schema's own example (of its first variant, for a union)."""
    ref = payload.get("$ref", "")
    schema = schemas.get(ref.removeprefix(SCHEMAS), payload) if ref else payload
    if schema.get("examples"):
        return schema["examples"][0]
    for variant in schema.get("oneOf") or schema.get("anyOf") or []:
        found = _example(variant, schemas)
        if found is not None:
            return found
    return None


def conventional(
    service: str, doc: dict[str, Any], exchanges: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """``doc`` (FastStream's AsyncAPI 3.0 output) with its channels, operations and messages
    named by the rule above. ``exchanges`` (queue name -> exchange) puts back, as
    ``x-exchange``, the exchange a consumer's queue is bound to."""
    doc = copy.deepcopy(doc)
    components = doc.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    old_messages: dict[str, Any] = components.get("messages") or {}

    # Payload schemas named after FastStream objects (a union's ``x:consume:Message:Payload``)
    # take the channel's name.
    channel_names = {key: _routing_key(ch, key) for key, ch in doc.get("channels", {}).items()}
    schema_renames: dict[str, str] = {}

    channels: dict[str, Any] = {}
    message_renames: dict[str, tuple[str, str]] = {}  # old channel/message ref -> (rk, name)
    messages: dict[str, Any] = {}
    for key, channel in (doc.get("channels") or {}).items():
        rk = channel_names[key]
        if rk in channels:
            raise ValueError(f"{service}: two channels with routing key {rk!r}")
        channel["address"] = rk
        if channel.get("description"):
            channel["description"] = inspect.cleandoc(channel["description"])
        queue = ((channel.get("bindings") or {}).get("amqp") or {}).get("queue") or {}
        if queue.get("name") in (exchanges or {}):
            channel["x-exchange"] = (exchanges or {})[queue["name"]]
        new_messages = {}
        for local_name, ref in (channel.get("messages") or {}).items():
            message = copy.deepcopy(old_messages[ref["$ref"].removeprefix(MESSAGES)])
            payload_ref = message.get("payload", {}).get("$ref", "")
            schema_name = payload_ref.removeprefix(SCHEMAS)
            if ":" in schema_name or not schema_name:
                new_schema = f"{_camel(rk)}Message"
                if schema_name:
                    schema_renames[schema_name] = new_schema
                    message["payload"] = {"$ref": f"{SCHEMAS}{new_schema}"}
                schema_name = new_schema
            name = schema_name
            summary = (schemas.get(payload_ref.removeprefix(SCHEMAS)) or {}).get("description")
            message.update(
                {
                    "name": name,
                    "title": _camel(rk),
                    "contentType": "application/json",
                }
            )
            if summary:
                message["summary"] = summary.strip().split("\n\n", 1)[0].replace("\n", " ")
            messages[name] = message
            new_messages[name] = {"$ref": f"{MESSAGES}{name}"}
            message_renames[f"{CHANNELS}{key}/messages/{local_name}"] = (rk, name)
        channel["messages"] = new_messages
        channels[rk] = channel

    for old, new in schema_renames.items():
        schemas[new] = {**schemas.pop(old), "title": new}
    for message in messages.values():
        example = _example(message.get("payload", {}), schemas)
        if example is not None:
            message["examples"] = [{"name": message["name"], "payload": example}]

    operations: dict[str, Any] = {}
    for operation in (doc.get("operations") or {}).values():
        old_key = operation["channel"]["$ref"].removeprefix(CHANNELS)
        rk = channel_names[old_key]
        op_id = f"{service}_{operation['action']}_{rk}"
        operation["channel"] = {"$ref": f"{CHANNELS}{rk}"}
        operation["messages"] = [
            {"$ref": "{}{}/messages/{}".format(CHANNELS, *message_renames[m["$ref"]])}
            for m in operation.get("messages") or []
        ]
        description = channels[rk].get("description")
        if description:
            operation.setdefault("description", description)
        operation["title"] = f"{service} {operation['action']}s {rk}"
        operations[op_id] = operation

    doc["channels"] = channels
    doc["operations"] = operations
    components["messages"] = messages
    return doc
