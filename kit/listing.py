"""Lists newest first, a page at a time: the filters of a list and the read of one page, the
same steps for every service's "list my ..." use case (the cursor itself is kit.pagination's)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from kit.db import Database
from kit.pagination import Position, decode_position, page_of


class Dated(Protocol):
    """What a listed item is ordered by: newest ``created_at`` first, then ``id``."""

    @property
    def created_at(self) -> datetime: ...

    @property
    def id(self) -> uuid.UUID: ...


T = TypeVar("T", bound=Dated)


def where_given(table: sa.Table, **values: object) -> list[sa.ColumnElement[bool]]:
    """``column == value`` for each of ``values`` that is not None (None: no such filter)."""
    return [table.c[name] == value for name, value in values.items() if value is not None]


async def read_page(
    db: Database,
    fetch: Callable[[AsyncConnection, Position | None, int], Awaitable[list[T]]],
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[T], str | None]:
    """One page of at most ``limit`` items and the cursor of the next (None: the last page).
    ``fetch(conn, before, n)`` reads up to ``n`` items older than the position ``before``
    (None: from the newest); it is asked for one more than the page, to know if more follow."""
    before = decode_position(cursor)
    async with db.read() as conn:
        items = await fetch(conn, before, limit + 1)
    return page_of(items, limit, lambda x: (x.created_at, x.id))
