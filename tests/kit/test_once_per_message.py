"""A consumer use case whose effect is declared once (kit.inbox: ``insert_from_mark``,
``once_per_message``, ``OneStatementHandler``) runs on SQLite too, where there are no
data-modifying CTEs: the same writes one after another, after the inbox mark, in one
transaction. Values bind with their columns' types (UUID, aware time, Decimal, JSON) and a
redelivery writes nothing. The PostgreSQL form is proven against this one per service
(tests/{notifications,analytics,payments}: the same messages through both give the same rows)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from kit.db import Database
from kit.inbox import INBOX, OneStatementHandler, Statement, insert_from_mark, once_per_message
from kit.consuming import consume_once
from kit.settings import ServiceSettings
from kit.tables import JSONDoc, UtcDateTime, service_metadata
from contracts.messages import UserRegistered

metadata = service_metadata()
tally = sa.Table(
    "tally",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("seen_at", UtcDateTime, nullable=False),
    sa.Column("amount", sa.Numeric(14, 2), nullable=False),
    sa.Column("doc", JSONDoc, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
)
COUNT = once_per_message(
    insert_from_mark(tally, "ON CONFLICT (id) DO UPDATE SET count = t.count + EXCLUDED.count")
)
IGNORE = once_per_message()
ROW = uuid.uuid4()
AT = datetime(2026, 12, 2, 10, 30, tzinfo=UTC)


async def _count(msg: UserRegistered, _conn: AsyncConnection) -> Statement:
    return Statement(
        COUNT,
        {
            "id": ROW,
            "seen_at": AT,
            "amount": Decimal("12.50"),
            "doc": {"email": msg.email},
            "count": 1,
        },
    )


async def _ignore(_msg: UserRegistered, _conn: AsyncConnection) -> Statement:
    return Statement(IGNORE, {})


count, ignore = OneStatementHandler(_count), OneStatementHandler(_ignore)


@pytest.fixture
async def db(tmp_path: Path):
    database = Database(
        ServiceSettings(
            service_name="kit", database_url=f"sqlite:///{tmp_path}/", database_prefix="t_"
        )
    )
    await database.prepare()
    async with database.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield database
    await database.dispose()


def _message() -> UserRegistered:
    return UserRegistered(user_id=uuid.uuid4(), email="a@example.com", role="customer")


async def _rows(db: Database, table: sa.Table) -> list[dict[str, Any]]:
    async with db.read() as conn:
        return [dict(r._mapping) for r in (await conn.execute(sa.select(table))).all()]


async def test_the_writes_run_one_by_one_on_sqlite_once_per_message(db: Database) -> None:
    first, second = _message(), _message()
    assert not db.is_postgres
    assert await consume_once(db, "q", first, count)
    assert not await consume_once(db, "q", first, count)  # redelivered: nothing written
    assert await consume_once(db, "q", second, count)
    assert await _rows(db, tally) == [
        {
            "id": ROW,
            "seen_at": AT,
            "amount": Decimal("12.50"),
            "doc": {"email": "a@example.com"},
            "count": 2,
        }
    ]
    marks = {(r["consumer"], r["message_id"]) for r in await _rows(db, INBOX)}
    assert marks == {("q", first.message_id), ("q", second.message_id)}


async def test_an_effect_without_writes_only_marks_the_message(db: Database) -> None:
    msg = _message()
    assert await consume_once(db, "q", msg, ignore)
    assert not await consume_once(db, "q", msg, ignore)
    assert await _rows(db, tally) == []
    assert [r["message_id"] for r in await _rows(db, INBOX)] == [msg.message_id]


def test_the_one_statement_form_marks_first_and_writes_from_the_mark() -> None:
    sql = str(COUNT.one_statement)
    assert sql.startswith("WITH inbox_mark AS (INSERT INTO inbox (consumer, message_id) ")
    assert "write_0 AS (INSERT INTO tally AS t" in sql and "FROM inbox_mark ON CONFLICT" in sql
    [alone] = COUNT.one_by_one
    assert "inbox" not in str(alone) and "WHERE true ON CONFLICT" in str(alone)
