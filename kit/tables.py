"""Tables the kit adds to every service's own database (outbox, inbox, idempotency keys), and
the column types and statements every service's tables use."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

JSONDoc = sa.JSON().with_variant(JSONB(), "postgresql")


class _SqliteUtcDateTime(sa.types.TypeDecorator[datetime]):
    """SQLite keeps no time zone: store UTC, read back aware UTC, as ``timestamptz`` does."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


UtcDateTime = sa.DateTime(timezone=True).with_variant(_SqliteUtcDateTime(), "sqlite")


def update_by_id(table: sa.Table, values: Mapping[str, Any]) -> sa.Update:
    """The UPDATE that writes ``values`` to the row of ``table`` whose ``id`` is ``values["id"]``
    (the id itself is not written)."""
    values = dict(values)
    row_id = values.pop("id")
    return table.update().where(table.c.id == row_id).values(**values)


def add_kit_tables(metadata: sa.MetaData) -> dict[str, sa.Table]:
    outbox = sa.Table(
        "outbox",
        metadata,
        sa.Column("id", sa.Uuid, primary_key=True, comment="= message_id"),
        sa.Column("created_at", UtcDateTime, nullable=False, server_default=sa.func.now()),
        sa.Column("routing_key", sa.String(100), nullable=False),
        sa.Column("message_type", sa.String(100), nullable=False),
        sa.Column("payload", JSONDoc, nullable=False),
        sa.Column("headers", JSONDoc, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Index("ix_outbox_created_at", "created_at"),
    )
    inbox = sa.Table(
        "inbox",
        metadata,
        sa.Column("consumer", sa.String(100), primary_key=True),
        sa.Column("message_id", sa.Uuid, primary_key=True),
        sa.Column("processed_at", UtcDateTime, nullable=False, server_default=sa.func.now()),
    )
    idempotency = sa.Table(
        "idempotency_keys",
        metadata,
        sa.Column("scope", sa.String(200), primary_key=True, comment="user id + operation"),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("response", JSONDoc, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False, server_default=sa.func.now()),
        sa.Index("ix_idempotency_keys_created_at", "created_at"),
    )
    return {"outbox": outbox, "inbox": inbox, "idempotency_keys": idempotency}


def service_metadata() -> sa.MetaData:
    """A service's ``MetaData``, the kit tables already in it: every service's database has them."""
    metadata = sa.MetaData()
    add_kit_tables(metadata)
    return metadata


def create_kit_tables(op) -> None:  # noqa: ANN001 - alembic's op proxy
    """For a service's first Alembic migration: create the kit tables as of kit schema v1."""
    for table in add_kit_tables(sa.MetaData()).values():
        table.create(op.get_bind())


def drop_kit_tables(op) -> None:  # noqa: ANN001
    for name in ("idempotency_keys", "inbox", "outbox"):
        op.drop_table(name)
