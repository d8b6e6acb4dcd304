"""The card-network simulator behaves like a real provider: idempotency keys, declines, refunds."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest

from apps.payments.adapters.provider import CardNetworkSimulator
from apps.payments.deps import provider_for
from apps.payments.bootstrap import build
from apps.payments.domain import InvalidPaymentMethod, ProviderError, ProviderIdempotencyConflict
from tests.payments.conftest import scalar

pytestmark = pytest.mark.integration


@pytest.fixture
async def simulator(start_service):
    async with start_service(build, connect_broker=False, outbox_relay=False) as svc:
        provider = provider_for(svc)
        assert isinstance(provider, CardNetworkSimulator)
        yield svc, provider


async def rows(svc, key: str) -> int:
    return await scalar(
        svc, "SELECT count(*) FROM simulator_charges WHERE idempotency_key = :k", k=key
    )


async def test_a_replayed_key_returns_the_original_charge_without_charging_again(simulator):
    svc, sim = simulator
    key = f"{uuid.uuid4()}:charge"
    first = await sim.charge(
        amount=Decimal("10.00"), currency="EUR", token="tok_visa", idempotency_key=key
    )
    again = await sim.charge(
        amount=Decimal("10.00"), currency="EUR", token="tok_visa", idempotency_key=key
    )
    assert first.succeeded and again == first
    assert await rows(svc, key) == 1
    with pytest.raises(ProviderIdempotencyConflict):
        await sim.charge(
            amount=Decimal("99.00"), currency="EUR", token="tok_visa", idempotency_key=key
        )


async def test_concurrent_charges_with_one_key_make_one_charge(simulator):
    svc, sim = simulator
    key = f"{uuid.uuid4()}:charge"
    results = await asyncio.gather(
        *(
            sim.charge(
                amount=Decimal("5.00"), currency="EUR", token="tok_visa", idempotency_key=key
            )
            for _ in range(10)
        )
    )
    assert len({r.reference for r in results}) == 1
    assert await rows(svc, key) == 1


async def test_decline_is_a_result_and_unknown_token_is_no_charge(simulator):
    svc, sim = simulator
    declined = await sim.charge(
        amount=Decimal("5.00"),
        currency="EUR",
        token="tok_chargeDeclined",
        idempotency_key="d" + uuid.uuid4().hex,
    )
    assert not declined.succeeded and declined.failure_reason == "card_declined"
    key = f"{uuid.uuid4()}:charge"
    with pytest.raises(InvalidPaymentMethod):
        await sim.charge(
            amount=Decimal("5.00"), currency="EUR", token="tok_nope", idempotency_key=key
        )
    assert await rows(svc, key) == 0


async def test_refunds_are_idempotent_and_only_of_successful_charges(simulator):
    _, sim = simulator
    charge = await sim.charge(
        amount=Decimal("7.00"), currency="EUR", token="tok_visa", idempotency_key=uuid.uuid4().hex
    )
    key = uuid.uuid4().hex
    first = await sim.refund(
        charge_ref=charge.reference, amount=Decimal("7.00"), idempotency_key=key
    )
    assert (
        await sim.refund(charge_ref=charge.reference, amount=Decimal("7.00"), idempotency_key=key)
        == first
    )
    with pytest.raises(ProviderError):
        await sim.refund(
            charge_ref=charge.reference, amount=Decimal("8.00"), idempotency_key=uuid.uuid4().hex
        )
    with pytest.raises(ProviderError):
        await sim.refund(
            charge_ref="ch_sim_unknown", amount=Decimal("1.00"), idempotency_key=uuid.uuid4().hex
        )
