"""The message contracts: envelope defaults, money on the wire, discriminated analytics union."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from pydantic import TypeAdapter, ValidationError

from contracts.envelope import caused_by
from contracts.messages import ALL_MESSAGES, AnalyticsFact, BookingCreated, PaymentConfirmed
from contracts.topology import ANALYTICS_FACTS, CONSUMERS
from tests.support.messages import booking_created


def test_money_is_a_two_decimal_string_on_the_wire_never_a_float():
    wire = booking_created(amount=Decimal("40")).model_dump(mode="json")
    assert wire["amount"] == "40.00" and isinstance(wire["amount"], str)
    back = BookingCreated.model_validate(wire)
    assert back.amount == Decimal("40.00")


@pytest.mark.parametrize(
    "bad",
    [
        {"amount": "1.001"},
        {"amount": "-1"},
        {"currency": "EURO"},
        {"quantity": 0},
        {"expires_at": "2030-01-01T00:00:00"},
    ],
)
def test_invalid_fields_are_rejected(bad):
    wire = booking_created().model_dump(mode="json") | bad
    with pytest.raises(ValidationError):
        BookingCreated.model_validate(wire)


def test_a_new_flow_correlates_with_itself_and_caused_messages_inherit_it():
    first = booking_created()
    assert first.correlation_id == first.message_id and first.causation_id is None
    follow = PaymentConfirmed(
        **caused_by(first),
        payment_id=uuid.uuid4(),
        booking_id=first.booking_id,
        user_id=first.user_id,
        amount=first.amount,
        currency=first.currency,
        provider_reference="sim_1",
    )
    assert follow.correlation_id == first.message_id and follow.causation_id == first.message_id


def test_analytics_union_dispatches_on_message_type():
    adapter = TypeAdapter(AnalyticsFact)
    for model_json in [booking_created().model_dump_json()]:
        assert isinstance(adapter.validate_json(model_json), BookingCreated)
    assert {m.__name__ for m in ANALYTICS_FACTS} <= {m.__name__ for m in ALL_MESSAGES}


def test_every_message_has_a_unique_routing_key_and_type():
    keys = [m.routing_key for m in ALL_MESSAGES]
    types = [m.model_fields["message_type"].default for m in ALL_MESSAGES]
    assert len(set(keys)) == len(keys) and len(set(types)) == len(types)
    consumed = {m for ms in CONSUMERS.values() for m in ms}
    assert consumed <= set(ALL_MESSAGES)


def test_unknown_fields_are_ignored_for_forward_compatibility():
    wire = booking_created().model_dump(mode="json") | {"added_in_v1_1": "x"}
    assert BookingCreated.model_validate(wire).quantity == 2


@pytest.mark.parametrize("model", ALL_MESSAGES, ids=lambda m: m.__name__)
def test_documented_example_is_a_valid_message(model):
    example = model.model_json_schema()["examples"][0]
    parsed = model.model_validate(example)
    assert parsed.message_type == model.model_fields["message_type"].default
