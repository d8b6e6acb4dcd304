"""Idempotent consumer: a message delivered twice has its effect once.

The consumer records ``(consumer, message_id)`` in its ``inbox`` table atomically with the
effect. A redelivery finds the row and does nothing; a crash before commit leaves no row, so the
redelivered message is processed for real. Two ways to get there:

* in a unit of work (any handler): :func:`first_delivery` inserts the mark in the same
  transaction as the handler's statements (BEGIN, mark, effect, COMMIT);
* in one statement (PostgreSQL, a handler whose whole effect is a few inserts or upserts, see
  :class:`OneStatementHandler`): the mark and the writes are data-modifying CTEs of one statement,
  each write taking its rows ``FROM inbox_mark``, which has a row only when this delivery made
  the mark. One statement is atomic by itself, so it runs without an explicit transaction: one
  round trip (and one database span when those are exported) instead of BEGIN, mark, writes,
  COMMIT. Consumers of many messages (analytics, notifications, payments' bookkeeping) use it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from kit.db import Database, UnitOfWork
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


# --- one statement per message (PostgreSQL) -------------------------------------------------

MARK_SQL = (
    "INSERT INTO inbox (consumer, message_id) VALUES (:inbox_consumer, :inbox_message_id) "
    "ON CONFLICT DO NOTHING RETURNING 1"
)


def once_per_message(*writes: str) -> sa.TextClause:
    """One statement: mark the message in the inbox and, on its first delivery only, run
    ``writes``; it answers whether this was the first delivery.

    Each write is an ``INSERT INTO t (...) SELECT :a, :b ... FROM inbox_mark [ON CONFLICT ...]``
    (PostgreSQL infers the parameters' types from the target columns). Build it once, at import
    time; :func:`apply_once` binds the inbox parameters. With no writes it only marks the message
    (a message this consumer ignores).
    """
    ctes = [f"inbox_mark AS ({MARK_SQL})"]
    ctes += [f"write_{i} AS ({write})" for i, write in enumerate(writes)]
    return sa.text(f"WITH {', '.join(ctes)} SELECT EXISTS (SELECT FROM inbox_mark)")


def insert_from_mark(table: sa.Table, on_conflict: str = "", *, prefix: str = "") -> str:
    """A write for :func:`once_per_message`: ``INSERT INTO <table> AS t (<every column>) SELECT
    :<prefix><column>, ... FROM inbox_mark <on_conflict>`` (``t`` names the stored row in
    ``on_conflict``; ``prefix`` tells apart two writes to one table)."""
    names = [c.name for c in table.c]
    values = ", ".join(f":{prefix}{name}" for name in names)
    return (
        f"INSERT INTO {table.name} AS t ({', '.join(names)}) SELECT {values} FROM inbox_mark"
        + (f" {on_conflict}" if on_conflict else "")
    )


@dataclass(frozen=True)
class Statement:
    """A statement made by :func:`once_per_message`, with its writes' parameters."""

    sql: sa.TextClause
    params: Mapping[str, Any]


M = TypeVar("M")


@dataclass(frozen=True)
class OneStatementHandler(Generic[M]):
    """A message handler whose whole effect is one statement on PostgreSQL.

    ``statement(message, conn)`` returns it (built once, with this message's parameters); it may
    read on ``conn`` first (outside a transaction) but never writes. ``in_unit_of_work`` is the same
    effect as ordinary unit-of-work code: what runs on SQLite (the embedded mode), and what a
    direct call ``handler(message, uow)`` runs. :func:`kit.messaging.consume_once` picks.
    """

    statement: Callable[[M, AsyncConnection], Awaitable[Statement]]
    in_unit_of_work: Callable[[M, UnitOfWork], Awaitable[None]]

    async def __call__(self, message: M, uow: UnitOfWork) -> None:
        await self.in_unit_of_work(message, uow)


async def apply_once(
    db: Database, consumer: str, message_id: uuid.UUID, message: M, handler: OneStatementHandler[M]
) -> bool:
    """Run ``handler``'s statement for ``message`` once per message id for ``consumer``: one
    round trip, atomic, durable when it returns. False for a duplicate delivery (nothing done)."""
    async with db.read() as conn:  # autocommit: the one statement is its own transaction
        statement = await handler.statement(message, conn)
        params = {**statement.params, "inbox_consumer": consumer, "inbox_message_id": message_id}
        return bool((await conn.execute(statement.sql, params)).scalar())
