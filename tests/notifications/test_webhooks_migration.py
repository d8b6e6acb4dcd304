"""Notifications migrations 0002 and later add the webhook tables on PostgreSQL and SQLite,
matching the service's table definitions, and their downgrades remove them again."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from apps.notifications.adapters.tables import metadata
from kit.db import Database
from kit.settings import ServiceSettings
from tests.support.db import downgrade, migrations_of, migrations_on_both_backends, upgrade

MIGRATIONS = migrations_of("notifications")
WEBHOOK_TABLES = {
    "event_organizers",
    "webhook_endpoints",
    "webhook_endpoint_kinds",
    "webhook_deliveries",
    "webhook_attempts",
    "webhook_waiting",  # 0003
}


settings = migrations_on_both_backends("notifications_mig")


async def columns(settings: ServiceSettings) -> dict[str, set[str]]:
    db = Database(settings)
    try:
        async with db.engine.connect() as conn:
            return await conn.run_sync(
                lambda c: {
                    t: {col["name"] for col in sa.inspect(c).get_columns(t)}
                    for t in sa.inspect(c).get_table_names()
                }
            )
    finally:
        await db.dispose()


@pytest.mark.integration
async def test_the_webhook_migrations_add_the_tables_and_their_downgrades_remove_them(settings):
    await asyncio.to_thread(upgrade, settings, MIGRATIONS, "head")
    found = await columns(settings)
    for table in WEBHOOK_TABLES:
        assert found[table] == {c.name for c in metadata.tables[table].c}, table
    await asyncio.to_thread(downgrade, settings, MIGRATIONS, "0001")
    found = await columns(settings)
    assert not WEBHOOK_TABLES & set(found) and "notifications" in found
