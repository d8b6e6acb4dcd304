"""Looks into a running service's database, for assertions."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


async def scalar(service: Any, sql: str, **params: Any) -> Any:
    async with service.db.engine.connect() as conn:
        return (await conn.execute(sa.text(sql), params)).scalar()


async def rows(service: Any, sql: str, **params: Any) -> list[Any]:
    async with service.db.engine.connect() as conn:
        return list((await conn.execute(sa.text(sql), params)).all())
