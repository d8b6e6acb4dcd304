"""Looks into a running service's database, for assertions; and makes a service's database
outside a running service (SQLite as the embedded mode has it, one migrated step by step)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from kit.db import Database, ensure_database
from kit.inbox import INBOX
from kit.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]


async def scalar(service: Any, sql: str, **params: Any) -> Any:
    async with service.db.engine.connect() as conn:
        return (await conn.execute(sa.text(sql), params)).scalar()


async def rows(service: Any, sql: str, **params: Any) -> list[Any]:
    async with service.db.engine.connect() as conn:
        return list((await conn.execute(sa.text(sql), params)).all())


async def inbox_marks(service: Any, message_id: uuid.UUID) -> int:
    """How many times the service's inbox marked ``message_id`` handled (by any consumer)."""
    async with service.db.engine.connect() as conn:
        stmt = sa.select(sa.func.count()).select_from(INBOX).where(INBOX.c.message_id == message_id)
        return (await conn.execute(stmt)).scalar_one()


def migrations_of(service: str) -> Path:
    """A service's Alembic migrations folder."""
    return ROOT / "apps" / service / "migrations"


@asynccontextmanager
async def postgres_database(service: str, name: str) -> AsyncIterator[Database]:
    """``service``'s database on the real PostgreSQL, made by its own migrations, of its own:
    ``name`` after the run's prefix (so the run's clean-up drops it), apart from the database the
    test's running services share."""
    settings = ServiceSettings(
        service_name=service,
        database_url=os.environ["DATABASE_URL"],
        database_prefix=os.environ["DATABASE_PREFIX"] + f"{name}_",
    )
    async with _migrated(service, settings) as db:
        yield db


@asynccontextmanager
async def sqlite_database(service: str, directory: Path) -> AsyncIterator[Database]:
    """``service``'s database as the embedded mode has it: a SQLite file in ``directory``, made
    by the service's own migrations."""
    settings = ServiceSettings(
        service_name=service, database_url=f"sqlite:///{directory}/", database_prefix="t_"
    )
    async with _migrated(service, settings) as db:
        yield db


@asynccontextmanager
async def _migrated(service: str, settings: ServiceSettings) -> AsyncIterator[Database]:
    """The database ``settings`` name, made by ``service``'s own migrations; disposed after."""
    db = Database(settings, migrations_of(service))
    await db.prepare()
    try:
        yield db
    finally:
        await db.dispose()


def migration_settings(backend: str, name: str, directory: Path) -> ServiceSettings:
    """Settings for an empty database of its own named after ``name`` (a random suffix), on
    ``backend`` ("postgresql": created with the run's prefix, so the run's clean-up drops it;
    "sqlite": a file in ``directory``), for a test that runs migrations one by one."""
    name = f"{name}_{uuid.uuid4().hex[:6]}"
    if backend == "sqlite":
        return ServiceSettings(
            service_name=name, database_url=f"sqlite:///{directory}/", database_prefix="t_"
        )
    settings = ServiceSettings(
        service_name=name, database_prefix=os.environ.get("DATABASE_PREFIX", "ebt_")
    )
    ensure_database(settings)
    return settings


def migrations_on_both_backends(name: str) -> Any:
    """A fixture, run twice: ``migration_settings`` for an empty database named after ``name``,
    on PostgreSQL, then on SQLite. Use as ``settings = migrations_on_both_backends("events_mig")``."""

    @pytest.fixture(params=["postgresql", "sqlite"])
    def settings(request: Any, tmp_path: Path) -> ServiceSettings:
        return migration_settings(request.param, name, tmp_path)

    return settings


def _alembic(settings: ServiceSettings, migrations: Path) -> Config:
    """Alembic's configuration for ``migrations`` against the database ``settings`` name (sync
    drivers)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations))
    url = settings.sqlalchemy_url
    postgres = url.get_backend_name() == "postgresql"
    cfg.attributes["sqlalchemy_url"] = url.set(
        drivername="postgresql+psycopg" if postgres else "sqlite"
    )
    return cfg


def upgrade(settings: ServiceSettings, migrations: Path, target: str) -> None:
    """Alembic's upgrade of the database ``settings`` name to ``target``."""
    command.upgrade(_alembic(settings, migrations), target)


def downgrade(settings: ServiceSettings, migrations: Path, target: str) -> None:
    """Alembic's downgrade of the database ``settings`` name to ``target``."""
    command.downgrade(_alembic(settings, migrations), target)
