"""Statements whose spelling differs between PostgreSQL and SQLite (the embedded mode), built
for the connection at hand (kit.db's ``Database.insert`` does the same for a database)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def insert_for(conn: AsyncConnection, table: sa.Table) -> Any:
    """The INSERT into ``table`` of ``conn``'s dialect, which has ``on_conflict_do_*``."""
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)
