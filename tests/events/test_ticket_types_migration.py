"""Migration 0002 gives every existing event one ticket type, ``General admission`` at the event's
price with the id consumers derive for it, and the default refund policy; on PostgreSQL and on
SQLite (the embedded mode)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from apps.events.adapters.repository import EventRepository
from apps.events.domain import RefundPolicy
from contracts.messages import implied_ticket_type_id
from kit.db import Database
from kit.tables import UtcDateTime
from tests.support.db import migrations_of, migrations_on_both_backends, upgrade

# The events table as migration 0001 left it (the columns an insert needs, typed).
EVENTS_0001 = sa.Table(
    "events",
    sa.MetaData(),
    sa.Column("id", sa.Uuid),
    sa.Column("organizer_id", sa.Uuid),
    sa.Column("title", sa.String),
    sa.Column("venue", sa.String),
    sa.Column("starts_at", UtcDateTime),
    sa.Column("capacity", sa.Integer),
    sa.Column("price", sa.Numeric(14, 2)),
    sa.Column("currency", sa.String),
    sa.Column("status", sa.String),
    sa.Column("version", sa.Integer),
    sa.Column("created_at", UtcDateTime),
    sa.Column("updated_at", UtcDateTime),
)
MIGRATIONS = migrations_of("events")


settings = migrations_on_both_backends("events_mig")


@pytest.mark.integration
async def test_existing_events_get_general_admission_and_the_default_policy(settings):
    await asyncio.to_thread(upgrade, settings, MIGRATIONS, "0001")
    event_id, now = uuid.uuid4(), datetime.now(UTC)
    db = Database(settings)
    try:
        async with db.engine.begin() as conn:
            await conn.execute(
                EVENTS_0001.insert(),
                {
                    "id": event_id,
                    "organizer_id": uuid.uuid4(),
                    "title": "Old",
                    "venue": "Here",
                    "starts_at": now + timedelta(days=3),
                    "capacity": 10,
                    "price": Decimal("12.00"),
                    "currency": "EUR",
                    "status": "scheduled",
                    "version": 3,
                    "created_at": now,
                    "updated_at": now,
                },
            )
        await asyncio.to_thread(upgrade, settings, MIGRATIONS, "head")
        async with db.engine.connect() as conn:
            event = await EventRepository(conn).get(event_id)
    finally:
        await db.dispose()
    assert event is not None and event.version == 3 and event.price == Decimal("12.00")
    [only] = event.ticket_types
    assert (only.id, only.name, only.price, only.capacity, only.sales_end) == (
        implied_ticket_type_id(event_id),
        "General admission",
        Decimal("12.00"),
        None,
        None,
    )
    assert event.refund_policy == RefundPolicy(True, 48, Decimal("0"))
