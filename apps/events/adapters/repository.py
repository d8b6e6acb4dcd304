"""Events table access (with each event's ticket types and refund policy). Takes the unit of
work's connection; never commits."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from apps.events.adapters.tables import events, ticket_types
from apps.events.domain import Event, RefundPolicy, TicketType
from kit.tables import update_by_id

# The event's own columns; ticket types have their table, the refund policy three columns.
_COLUMNS = [f.name for f in fields(Event) if f.name not in ("ticket_types", "refund_policy")]
_TYPE_COLUMNS = [f.name for f in fields(TicketType)]


def _event_row(event: Event) -> dict[str, Any]:
    values = {k: getattr(event, k) for k in _COLUMNS}
    policy = event.refund_policy
    values.update(
        refund_self_service=policy.self_service,
        refund_deadline_hours=policy.deadline_hours_before_start,
        refund_fee_percent=policy.fee_percent,
    )
    return values


def _to_event(row: sa.Row, types: Sequence[TicketType]) -> Event:
    policy = RefundPolicy(
        self_service=row.refund_self_service,
        deadline_hours_before_start=row.refund_deadline_hours,
        fee_percent=row.refund_fee_percent,
    )
    return Event(
        **{k: getattr(row, k) for k in _COLUMNS},
        ticket_types=tuple(types),
        refund_policy=policy,
    )


class EventRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, event: Event) -> None:
        await self.conn.execute(events.insert().values(**_event_row(event)))
        await self._write_types(event.id, event.ticket_types, new=True)

    async def get(self, event_id: uuid.UUID, *, for_update: bool = False) -> Event | None:
        stmt = sa.select(events).where(events.c.id == event_id)
        if for_update:
            # the event's row lock also guards its ticket types (adds and changes queue here)
            stmt = stmt.with_for_update()
        row = (await self.conn.execute(stmt)).first()
        if row is None:
            return None
        return _to_event(row, (await self._types_of([event_id]))[event_id])

    async def save(self, event: Event, *, previous: Event | None = None) -> None:
        """Write the event; its ticket types too when they differ from ``previous``'s (new ones
        are inserted, changed ones updated; types are never removed)."""
        await self.conn.execute(update_by_id(events, _event_row(event)))
        before = {t.id: t for t in previous.ticket_types} if previous else {}
        added = [t for t in event.ticket_types if t.id not in before]
        changed = [t for t in event.ticket_types if t.id in before and before[t.id] != t]
        await self._write_types(event.id, added, new=True)
        await self._write_types(event.id, changed, new=False)

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
        rows = (await self.conn.execute(stmt)).all()
        types = await self._types_of([r.id for r in rows])
        return [_to_event(r, types[r.id]) for r in rows]

    async def _types_of(self, event_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[TicketType]]:
        """The ticket types of these events in one query, in their order."""
        found: dict[uuid.UUID, list[TicketType]] = defaultdict(list)
        if not event_ids:
            return found
        stmt = (
            sa.select(ticket_types)
            .where(ticket_types.c.event_id.in_(event_ids))
            .order_by(ticket_types.c.event_id, ticket_types.c.position)
        )
        for r in (await self.conn.execute(stmt)).all():
            found[r.event_id].append(TicketType(**{k: getattr(r, k) for k in _TYPE_COLUMNS}))
        return found

    async def _write_types(
        self, event_id: uuid.UUID, types: Iterable[TicketType], *, new: bool
    ) -> None:
        rows = [{**asdict(t), "event_id": event_id} for t in types]
        if not rows:
            return
        if new:
            await self.conn.execute(ticket_types.insert(), rows)  # one executemany
            return
        for values in rows:
            await self.conn.execute(update_by_id(ticket_types, values))
