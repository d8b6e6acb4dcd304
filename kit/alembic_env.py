"""What every service's ``migrations/env.py`` runs: online migrations with a sync driver,
serialised by a PostgreSQL advisory lock so replicas starting together do not race; and what
the migrations themselves share (a first migration's tables, SQL files)."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.schema import SchemaItem

from kit.tables import create_kit_tables, drop_kit_tables


def run_migrations(target_metadata: sa.MetaData) -> None:
    config = context.config
    url = config.attributes.get("sqlalchemy_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: set sqlalchemy_url or sqlalchemy.url")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        is_pg = conn.dialect.name == "postgresql"
        lock_id = zlib.crc32(str(conn.engine.url.database).encode())
        if is_pg:
            conn.execute(sa.text("SELECT pg_advisory_lock(:id)"), {"id": lock_id})
            conn.commit()
        try:
            context.configure(connection=conn, target_metadata=target_metadata)
            with context.begin_transaction():
                context.run_migrations()
            conn.commit()
        finally:
            if is_pg:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": lock_id})
                conn.commit()
    engine.dispose()


def run_sql_file(path: str | Path) -> None:
    """Run a named SQL file (functions, triggers) inside the current migration, as the driver's
    own multi-statement string (no bind-parameter parsing of its ``:`` and ``$`` characters).

    Database code lives in such files, one per function or trigger, so that a reader finds it by
    name rather than in migration history; each migration that changes it runs the file again
    (the files are written to be re-runnable: ``CREATE OR REPLACE``, ``DROP ... IF EXISTS``)."""
    op.get_bind().exec_driver_sql(Path(path).read_text())


class InitialSchema:
    """A service's first migration: the kit tables and the service's own tables, as the migration
    declares them with :meth:`table`.

    The migration keeps its own frozen copy of its tables, never the service's ``tables.py``:
    that one follows the later migrations, and an old migration must go on creating what it
    created when it was written."""

    def __init__(self) -> None:
        self.metadata = sa.MetaData()

    def table(self, name: str, *columns_and_constraints: SchemaItem, **kw: Any) -> sa.Table:
        return sa.Table(name, self.metadata, *columns_and_constraints, **kw)

    def upgrade(self) -> None:
        create_kit_tables(op)
        self.metadata.create_all(op.get_bind())

    def downgrade(self) -> None:
        self.metadata.drop_all(op.get_bind())
        drop_kit_tables(op)
