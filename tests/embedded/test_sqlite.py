"""The kit's SQLite adapter (the embedded mode's databases) keeps the semantics the services
rely on from PostgreSQL: one file per service, writers serialised (what row locks give), reads
outside transactions never blocking them, and aware UTC times."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from kit.db import Database
from kit.uow import UnitOfWork
from kit.outbox import OUTBOX
from tests.support.db import sqlite_database
from tests.support.messages import payment_confirmed


@pytest.fixture
async def db(tmp_path: Path):
    async with sqlite_database("events", tmp_path) as database:  # its Alembic migrations
        assert database.url.database == f"{tmp_path}/t_events.db"
        yield database


async def _count(db: Database) -> int:
    async with db.read() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(OUTBOX))).scalar_one()


async def test_times_come_back_aware_utc(db: Database) -> None:
    async with UnitOfWork(db) as uow:
        uow.publish(payment_confirmed())
        await uow.commit()
    async with db.read() as conn:
        created = (await conn.execute(sa.select(OUTBOX.c.created_at))).scalar_one()
    assert created.tzinfo is UTC
    assert abs((datetime.now(UTC) - created).total_seconds()) < 60


async def test_a_second_writer_waits_for_the_first_instead_of_failing(db: Database) -> None:
    first_has_read = asyncio.Event()
    release_first = asyncio.Event()

    async def read_then_write(wait: bool) -> None:
        async with UnitOfWork(db) as uow:
            await uow.conn.execute(sa.select(sa.func.count()).select_from(OUTBOX))
            if wait:
                first_has_read.set()
                await release_first.wait()
            uow.publish(payment_confirmed())
            await uow.commit()

    first = asyncio.create_task(read_then_write(True))
    await first_has_read.wait()
    second = asyncio.create_task(read_then_write(False))
    await asyncio.sleep(0.3)
    assert not second.done()  # waiting for the write lock, like a row lock on PostgreSQL
    assert await _count(db) == 0  # a read outside a transaction is not blocked by it
    release_first.set()
    await asyncio.gather(first, second)
    assert await _count(db) == 2
