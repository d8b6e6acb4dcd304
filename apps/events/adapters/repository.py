"""Events table access. Takes the unit of work's connection; never commits."""

from __future__ import annotations

import uuid
from dataclasses import asdict, fields
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from apps.events.adapters.tables import events
from apps.events.domain import Event

_COLUMNS = [f.name for f in fields(Event)]


def _to_event(row: sa.Row) -> Event:
    return Event(**{k: getattr(row, k) for k in _COLUMNS})


class EventRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, event: Event) -> None:
        await self.conn.execute(events.insert().values(**asdict(event)))

    async def get(self, event_id: uuid.UUID, *, for_update: bool = False) -> Event | None:
        stmt = sa.select(events).where(events.c.id == event_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = (await self.conn.execute(stmt)).first()
        return _to_event(row) if row else None

    async def save(self, event: Event) -> None:
        values = asdict(event)
        values.pop("id")
        await self.conn.execute(events.update().where(events.c.id == event.id).values(**values))

    async def page(
        self,
        *,
        limit: int,
        after: tuple[datetime, uuid.UUID] | None,
        organizer_id: uuid.UUID | None,
        status: str | None,
    ) -> list[Event]:
        stmt = sa.select(events).order_by(events.c.starts_at, events.c.id).limit(limit)
        if after is not None:
            stmt = stmt.where(sa.tuple_(events.c.starts_at, events.c.id) > sa.tuple_(*after))
        if organizer_id is not None:
            stmt = stmt.where(events.c.organizer_id == organizer_id)
        if status is not None:
            stmt = stmt.where(events.c.status == status)
        return [_to_event(r) for r in (await self.conn.execute(stmt)).all()]
