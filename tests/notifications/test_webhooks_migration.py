"""Notifications migration 0002 adds the webhook tables on PostgreSQL and SQLite, matching the
service's table definitions, and its downgrade removes them again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from apps.notifications.adapters.tables import metadata
from kit.db import Database
from kit.settings import ServiceSettings
from tests.support.db import migration_settings, migrations_of, upgrade

MIGRATIONS = migrations_of("notifications")
WEBHOOK_TABLES = {
    "event_organizers",
    "webhook_endpoints",
    "webhook_endpoint_kinds",
    "webhook_deliveries",
    "webhook_attempts",
}


@pytest.fixture(params=["postgresql", "sqlite"])
def settings(request, tmp_path: Path) -> ServiceSettings:
    return migration_settings(request.param, "notifications_mig", tmp_path)


def downgrade(settings: ServiceSettings, target: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    url = settings.sqlalchemy_url
    postgres = url.get_backend_name() == "postgresql"
    cfg.attributes["sqlalchemy_url"] = url.set(
        drivername="postgresql+psycopg" if postgres else "sqlite"
    )
    command.downgrade(cfg, target)


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
async def test_0002_adds_the_webhook_tables_and_its_downgrade_removes_them(settings):
    await asyncio.to_thread(upgrade, settings, MIGRATIONS, "0002")
    found = await columns(settings)
    for table in WEBHOOK_TABLES:
        assert found[table] == {c.name for c in metadata.tables[table].c}, table
    await asyncio.to_thread(downgrade, settings, "0001")
    found = await columns(settings)
    assert not WEBHOOK_TABLES & set(found) and "notifications" in found
