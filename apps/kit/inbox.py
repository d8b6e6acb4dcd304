"""Idempotent consumer: a message delivered twice has its effect once.

The consumer records ``(consumer, message_id)`` in its ``inbox`` table in the same transaction
as the effect. A redelivery finds the row and does nothing; a crash before commit leaves no row,
so the redelivered message is processed for real.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from apps.kit.db import UnitOfWork
from apps.kit.tables import add_kit_tables

INBOX = add_kit_tables(sa.MetaData())["inbox"]


async def first_delivery(uow: UnitOfWork, consumer: str, message_id: uuid.UUID) -> bool:
    """Mark the message as processed by ``consumer``; False if it already was."""
    stmt = (
        uow.db.insert(INBOX)
        .values(consumer=consumer, message_id=message_id)
        .on_conflict_do_nothing()
        .returning(INBOX.c.message_id)
    )
    return (await uow.conn.execute(stmt)).first() is not None
