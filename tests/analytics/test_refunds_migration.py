"""Analytics migration 0002 gives every payment already refunded its one refund row (the whole
refunded amount, keyed as a refund without an id), on PostgreSQL and on SQLite."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from apps.analytics.adapters.tables import refunds
from apps.analytics.domain import whole_refund_key
from kit.db import Database
from kit.tables import UtcDateTime
from tests.support.db import migrations_of, migrations_on_both_backends, upgrade

MIGRATIONS = migrations_of("analytics")
PAYMENTS_0001 = sa.Table(
    "payments",
    sa.MetaData(),
    sa.Column("payment_id", sa.Uuid),
    sa.Column("booking_id", sa.Uuid),
    sa.Column("user_id", sa.Uuid),
    sa.Column("event_id", sa.Uuid),
    sa.Column("amount", sa.Numeric(14, 2)),
    sa.Column("currency", sa.String),
    sa.Column("status", sa.String),
    sa.Column("succeeded_at", UtcDateTime),
    sa.Column("refunded_at", UtcDateTime),
    sa.Column("refunded_amount", sa.Numeric(14, 2)),
)


settings = migrations_on_both_backends("analytics_mig")


@pytest.mark.integration
async def test_refunded_payments_get_their_refund_row(settings):
    await asyncio.to_thread(upgrade, settings, MIGRATIONS, "0001")
    now = datetime.now(UTC)
    refunded, paid = uuid.uuid4(), uuid.uuid4()
    db = Database(settings)
    try:
        async with db.engine.begin() as conn:
            for payment_id, refunded_at in ((refunded, now), (paid, None)):
                await conn.execute(
                    PAYMENTS_0001.insert(),
                    {
                        "payment_id": payment_id,
                        "booking_id": uuid.uuid4(),
                        "user_id": uuid.uuid4(),
                        "event_id": uuid.uuid4(),
                        "amount": Decimal("40.00"),
                        "currency": "EUR",
                        "status": "refunded" if refunded_at else "succeeded",
                        "succeeded_at": now,
                        "refunded_at": refunded_at,
                        "refunded_amount": Decimal("40.00") if refunded_at else None,
                    },
                )
        await asyncio.to_thread(upgrade, settings, MIGRATIONS, "head")
        async with db.engine.connect() as conn:
            rows = (await conn.execute(sa.select(refunds))).all()
    finally:
        await db.dispose()
    assert [(r.refund_key, r.payment_id, r.amount, r.refunded_at) for r in rows] == [
        (whole_refund_key(refunded), refunded, Decimal("40.00"), now)
    ]
