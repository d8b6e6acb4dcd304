"""The card-network simulator's own SQLite ledger (embedded mode) is created once, even when
the first charges arrive together."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

from sqlalchemy.engine import make_url

from apps.payments.adapters.provider import CardNetworkSimulator


async def test_first_charges_at_once_create_the_ledger_once(tmp_path):
    simulator = CardNetworkSimulator(make_url(f"sqlite+aiosqlite:///{tmp_path / 'payments.db'}"))
    results = await asyncio.gather(
        *(
            simulator.charge(
                amount=Decimal("10.00"),
                currency="EUR",
                token="tok_visa",
                idempotency_key=uuid.uuid4().hex,
            )
            for _ in range(8)
        )
    )
    assert len(results) == 8
    assert all(r.succeeded for r in results)
    assert len({r.reference for r in results}) == 8
