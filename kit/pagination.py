"""Cursor pagination: ``{"items": [...], "next_cursor": "..."|null}`` with ``?limit&cursor``."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

import sqlalchemy as sa
from fastapi import Query
from pydantic import AfterValidator, BaseModel, Field

from kit.problems import BadRequest

T = TypeVar("T")

MAX_LIMIT = 100


def _capped(limit: int) -> int:
    return min(limit, MAX_LIMIT)


# A larger page size is capped, not refused: ``?limit=1000`` reads pages of 100.
Limit = Annotated[
    int,
    AfterValidator(_capped),
    Query(ge=1, description=f"Page size; a larger one is taken as {MAX_LIMIT}."),
]
Cursor = Annotated[
    str | None,
    Query(max_length=500, description="Opaque cursor from the previous page's `next_cursor`."),
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


def encode_cursor(*values: Any) -> str:
    raw = json.dumps([str(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise BadRequest("The cursor is not valid.", code="invalid-cursor") from exc
    if (
        not isinstance(values, list)
        or len(values) != arity
        or not all(isinstance(v, str) for v in values)
    ):
        raise BadRequest("The cursor is not valid.", code="invalid-cursor")
    return values


Position = tuple[datetime, uuid.UUID]


def decode_position(cursor: str | None) -> Position | None:
    """The (timestamp, id) keyset position a cursor encodes; None for the first page."""
    if not cursor:
        return None
    when, ident = decode_cursor(cursor, 2)
    try:
        position = datetime.fromisoformat(when)
        if position.tzinfo is None:
            raise ValueError("no time zone")
        # a forged cursor at the calendar's edge has no UTC equivalent (OverflowError)
        return position.astimezone(UTC), uuid.UUID(ident)
    except (ValueError, OverflowError):
        raise BadRequest("The cursor is not valid.", code="invalid-cursor") from None


def newest_first(
    table: sa.Table, *where: sa.ColumnElement[bool], limit: int, before: Position | None
) -> sa.Select[Any]:
    """``table``'s rows matching ``where``, newest first by (``created_at``, ``id``): at most
    ``limit`` of them, those after the keyset position ``before`` (None: from the newest)."""
    stmt = (
        sa.select(table)
        .where(*where)
        .order_by(table.c.created_at.desc(), table.c.id.desc())
        .limit(limit)
    )
    if before is not None:
        stmt = stmt.where(sa.tuple_(table.c.created_at, table.c.id) < sa.tuple_(*before))
    return stmt


def page_of(
    items: list[T], limit: int, position: Callable[[T], Position]
) -> tuple[list[T], str | None]:
    """Cut ``items`` (fetched with ``limit + 1``) to a page and the cursor of the next one."""
    if len(items) <= limit:
        return items, None
    items = items[:limit]
    when, ident = position(items[-1])
    return items, encode_cursor(when.isoformat(), ident)
