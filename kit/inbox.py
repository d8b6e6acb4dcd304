"""Idempotent consumer: a message delivered twice has its effect once.

The consumer records ``(consumer, message_id)`` in its ``inbox`` table atomically with the
effect. A redelivery finds the row and does nothing; a crash before commit leaves no row, so the
redelivered message is processed for real. Two ways to get there:

* in a unit of work (any handler): :func:`first_delivery` inserts the mark in the same
  transaction as the handler's statements (BEGIN, mark, effect, COMMIT);
* a handler whose whole effect is a few inserts or upserts (:class:`OneStatementHandler`)
  declares those writes ONCE, as data (:func:`insert_from_mark`, :func:`once_per_message`), and
  the kit runs them two ways: on PostgreSQL the mark and the writes are data-modifying CTEs of
  one statement, each write taking its row ``FROM inbox_mark``, which has a row only when this
  delivery made the mark (atomic by itself, so no explicit transaction: one round trip instead
  of BEGIN, mark, writes, COMMIT); where the database has no data-modifying CTEs (SQLite, the
  embedded mode) the same writes run one after another in the unit of work, after its mark.
  Consumers of many messages (analytics, notifications, payments' bookkeeping) use it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from kit.db import Database
from kit.uow import UnitOfWork
from kit.tables import add_kit_tables

INBOX = add_kit_tables(sa.MetaData())["inbox"]

# Built once: building the statement for each message cost about as much CPU as running it.
_MARK = {
    name: insert(INBOX)
    .values(consumer=sa.bindparam("consumer"), message_id=sa.bindparam("message_id"))
    .on_conflict_do_nothing()
    .returning(INBOX.c.message_id)
    for name, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}


async def first_delivery(uow: UnitOfWork, consumer: str, message_id: uuid.UUID) -> bool:
    """Mark the message as processed by ``consumer``; False if it already was."""
    stmt = _MARK["postgresql" if uow.db.is_postgres else "sqlite"]
    result = await uow.conn.execute(stmt, {"consumer": consumer, "message_id": message_id})
    return result.first() is not None


# --- one definition per use case, two ways to run it -----------------------------------------

# The mark's parameters, typed by the table's columns: bound as the table's own inserts bind.
_MARK_BINDS = (
    sa.bindparam("inbox_consumer", type_=INBOX.c.consumer.type),
    sa.bindparam("inbox_message_id", type_=INBOX.c.message_id.type),
)
_MARK_COLUMNS = f"{INBOX.c.consumer.name}, {INBOX.c.message_id.name}"


def mark_params(consumer: str, message_id: uuid.UUID) -> dict[str, Any]:
    """The parameters of every mark built here (:data:`MARK_SQL`, :func:`mark_sql`,
    :func:`marked_sql`)."""
    return {"inbox_consumer": consumer, "inbox_message_id": message_id}


# The mark as the first CTE of the one statement; its columns come from the table definition.
MARK_SQL = (
    f"INSERT INTO {INBOX.name} ({_MARK_COLUMNS}) "
    "VALUES (:inbox_consumer, :inbox_message_id) ON CONFLICT DO NOTHING RETURNING 1"
)


def mark_sql(source: str) -> str:
    """The mark as a data-modifying CTE of a textual statement (PostgreSQL) that makes it only
    if ``source`` (e.g. ``FROM upd``) has a row: for a statement whose own guard decides whether
    the message is handled now (with :func:`marked_sql`), where :data:`MARK_SQL` marks it
    whatever the rest of the statement does. The parameters are cast here, as a ``SELECT``
    list gives PostgreSQL no column to infer their types from."""
    pg = postgresql.dialect()
    values = ", ".join(f"CAST(:{b.key} AS {b.type.compile(dialect=pg)})" for b in _MARK_BINDS)
    return f"INSERT INTO {INBOX.name} ({_MARK_COLUMNS}) SELECT {values} {source}"


def marked_sql() -> str:
    """``EXISTS (...)``: true if the message already has its mark (the guard of
    :func:`mark_sql`; a concurrent duplicate that passes it too fails on the primary key)."""
    pg = postgresql.dialect()
    cond = " AND ".join(
        f"{c.name} = CAST(:{b.key} AS {b.type.compile(dialect=pg)})"
        for c, b in zip((INBOX.c.consumer, INBOX.c.message_id), _MARK_BINDS, strict=True)
    )
    return f"EXISTS (SELECT FROM {INBOX.name} WHERE {cond})"


# Where a write takes its one row from: the mark's CTE (one statement), or nothing (one by one,
# after the mark; ``WHERE true`` because SQLite cannot parse ``INSERT ... SELECT ... ON
# CONFLICT`` without a WHERE clause).
_FROM_MARK, _UNCONDITIONAL = "FROM inbox_mark", "WHERE true"


@dataclass(frozen=True)
class Write:
    """One write of a message's effect (made by :func:`insert_from_mark`): its SQL with the
    place of its row source, and its typed parameters."""

    template: str  # ``{source}`` marks where the row comes from
    binds: tuple[sa.BindParameter[Any], ...]

    def sql(self, source: str) -> str:
        return self.template.replace("{source}", source, 1)


def insert_from_mark(
    table: sa.Table,
    on_conflict: str = "",
    *,
    prefix: str = "",
    binds: Sequence[sa.BindParameter[Any]] = (),
) -> Write:
    """``INSERT INTO <table> AS t (<every column>) SELECT :<prefix><column>, ... FROM inbox_mark
    <on_conflict>``: one row, written on the message's first delivery only.

    ``t`` names the stored row in ``on_conflict`` (keep it to SQL that PostgreSQL and SQLite
    both run: the same write runs on both); ``prefix`` tells apart two writes to one table;
    ``binds`` declares the other parameters ``on_conflict`` uses. Each column's parameter has the
    column's type, so values bind as the table's own inserts bind them (UUIDs, aware times,
    JSON, Decimal) on either database.
    """
    names = [c.name for c in table.c]
    values = ", ".join(f":{prefix}{name}" for name in names)
    conflict = f" {on_conflict}" if on_conflict else ""
    template = (
        f"INSERT INTO {table.name} AS t ({', '.join(names)}) SELECT {values} {{source}}{conflict}"
    )
    columns = tuple(sa.bindparam(f"{prefix}{c.name}", type_=c.type) for c in table.c)
    return Write(template, columns + tuple(binds))


@dataclass(frozen=True)
class Writes:
    """A message's effect (made by :func:`once_per_message`), built once in its two forms."""

    one_statement: sa.TextClause  # PostgreSQL: the mark and every write; answers "first?"
    one_by_one: tuple[sa.TextClause, ...]  # each write alone, run after the mark


def once_per_message(*writes: Write) -> Writes:
    """The mark and, on the message's first delivery only, ``writes``, in order. Build it once,
    at import time (building a statement per message cost about as much CPU as running it).
    With no writes it only marks the message (a message this consumer ignores)."""
    ctes = [f"inbox_mark AS ({MARK_SQL})"]
    ctes += [f"write_{i} AS ({w.sql(_FROM_MARK)})" for i, w in enumerate(writes)]
    one_statement = sa.text(
        f"WITH {', '.join(ctes)} SELECT EXISTS (SELECT FROM inbox_mark)"
    ).bindparams(*_MARK_BINDS, *(b for w in writes for b in w.binds))
    one_by_one = tuple(sa.text(w.sql(_UNCONDITIONAL)).bindparams(*w.binds) for w in writes)
    return Writes(one_statement, one_by_one)


@dataclass(frozen=True)
class Statement:
    """A message's effect (:func:`once_per_message`) with this message's parameters."""

    writes: Writes
    params: Mapping[str, Any]


M = TypeVar("M")


@dataclass(frozen=True)
class OneStatementHandler(Generic[M]):
    """A message handler whose whole effect is the writes of one :class:`Statement`.

    ``statement(message, conn)`` returns them with this message's parameters; it may read on
    ``conn`` first but never writes. That is the handler's only definition:
    :func:`kit.consuming.consume_once` runs it as one statement on PostgreSQL
    (:func:`apply_once`); on SQLite, and in a direct call ``handler(message, uow)``, the same
    writes run one by one in the unit of work (:meth:`in_unit_of_work`).
    """

    statement: Callable[[M, AsyncConnection], Awaitable[Statement]]

    async def __call__(self, message: M, uow: UnitOfWork) -> None:
        await self.in_unit_of_work(message, uow)

    async def in_unit_of_work(self, message: M, uow: UnitOfWork) -> None:
        """The writes one after another on ``uow``, whose caller has made the inbox mark."""
        statement = await self.statement(message, uow.conn)
        for write in statement.writes.one_by_one:
            await uow.conn.execute(write, statement.params)


async def apply_once(
    db: Database, consumer: str, message_id: uuid.UUID, message: M, handler: OneStatementHandler[M]
) -> bool:
    """Run ``handler``'s statement for ``message`` once per message id for ``consumer``: one
    round trip, atomic, durable when it returns. False for a duplicate delivery (nothing done)."""
    async with db.read() as conn:  # autocommit: the one statement is its own transaction
        statement = await handler.statement(message, conn)
        params = {**statement.params, **mark_params(consumer, message_id)}
        return bool((await conn.execute(statement.writes.one_statement, params)).scalar())
