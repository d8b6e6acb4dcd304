"""The envelope every message carries, and the shared value types.

The envelope fields live in the message body (so every consumer, whatever its client library,
sees them) and are mirrored into AMQP properties by the publisher (``message_id``,
``correlation_id``, ``type``, ``app_id``, ``timestamp``); W3C trace context travels in headers.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)
from pydantic_extra_types.currency_code import ISO4217


def _has_a_utc_time(value: datetime) -> datetime:
    try:
        value.astimezone(UTC)
    except OverflowError:  # "9999-12-31T23:00:00-05:00": past the calendar's end in UTC
        raise ValueError("the time has no UTC equivalent") from None
    return value


# A time with a time zone that also exists in UTC (what the databases store): a client's
# "0001-01-01T00:00:00+05:00" is a 422, never a database error.
AwareInstant = Annotated[AwareDatetime, AfterValidator(_has_a_utc_time)]

# Money is a decimal string on the wire ("20.00"), never a float.
MoneyAmount = Annotated[
    Decimal,
    Field(
        ge=0,
        max_digits=14,
        decimal_places=2,
        description="Amount as a decimal string with at most two decimal places.",
        examples=["20.00"],
    ),
    PlainSerializer(lambda v: f"{v:.2f}", return_type=str, when_used="json"),
]
CurrencyCode = Annotated[ISO4217, Field(description="ISO 4217 currency code.", examples=["EUR"])]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Money(BaseModel):
    """An amount of money in one currency."""

    model_config = ConfigDict(frozen=True)

    amount: MoneyAmount
    currency: CurrencyCode


_EXAMPLE_UUIDS = {
    "message_id": "2d4f7a1c-9b3e-4c8d-a6f5-1e2b3c4d5e6f",
    "correlation_id": "2d4f7a1c-9b3e-4c8d-a6f5-1e2b3c4d5e6f",
}
_PLACEHOLDER_UUID = "5f0c6d2e-8f1b-4d7a-9a3e-2b1c0d9e8f7a"
_PLACEHOLDER_TIME = "2027-05-01T09:00:00Z"


def _example_value(name: str, prop: dict[str, Any]) -> Any:
    if "examples" in prop:
        return prop["examples"][0]
    if "const" in prop:
        return prop["const"]
    if prop.get("default") is not None:
        return prop["default"]
    if prop.get("enum"):
        return prop["enum"][0]
    for option in prop.get("anyOf", []):
        if option.get("type") != "null":
            return _example_value(name, option | {k: v for k, v in prop.items() if k != "anyOf"})
    fmt, kind = prop.get("format"), prop.get("type")
    if fmt == "uuid":
        return _EXAMPLE_UUIDS.get(name, _PLACEHOLDER_UUID)
    if fmt == "date-time":
        return _PLACEHOLDER_TIME
    if fmt == "email":
        return "ada@example.com"
    return {"integer": 1, "number": 1, "boolean": False, "array": [], "string": "text"}.get(
        str(kind)
    )


def _add_example(schema: dict[str, Any]) -> None:
    """A complete, deterministic example message for the AsyncAPI documents."""
    props = schema.get("properties", {})
    example = {name: _example_value(name, prop) for name, prop in props.items()}
    if "causation_id" in example:
        example["causation_id"] = None
    schema["examples"] = [example]


class Envelope(BaseModel):
    """Fields common to every message on the bus.

    Subclasses set ``message_type`` (a ``Literal``: it is the discriminator consumers of mixed
    channels, such as ``analytics``, dispatch on) and ``routing_key`` (the channel they are
    published to). ``schema_version`` changes only on a breaking change; additive fields keep it.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, json_schema_extra=_add_example)

    routing_key: ClassVar[str]

    message_id: uuid.UUID = Field(
        default_factory=uuid.uuid4,
        description="Unique id of this message; consumers deduplicate on it.",
    )
    schema_version: int = Field(default=1, ge=1, description="Version of this message's schema.")
    occurred_at: AwareDatetime = Field(
        default_factory=utcnow, description="When the fact happened (ISO 8601, with time zone)."
    )
    producer: str = Field(
        default="unknown",
        description="Name of the service that produced the message.",
        examples=["booking"],
    )
    correlation_id: uuid.UUID | None = Field(
        default=None,
        description="Id shared by every message of one business flow (e.g. one booking's saga).",
    )
    causation_id: uuid.UUID | None = Field(
        default=None, description="message_id of the message that caused this one, if any."
    )

    @model_validator(mode="after")
    def _default_correlation(self) -> Self:
        # A message that starts a flow correlates with itself.
        if self.correlation_id is None:
            object.__setattr__(self, "correlation_id", self.message_id)
        return self


def caused_by(cause: Envelope | None) -> dict[str, Any]:
    """Envelope fields for a message caused by ``cause``: ``Model(**caused_by(msg), ...)``."""
    if cause is None:
        return {}
    return {
        "correlation_id": cause.correlation_id or cause.message_id,
        "causation_id": cause.message_id,
    }
