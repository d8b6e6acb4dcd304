"""Live availability: what an event has left, read for many events in one statement, and the
in-memory fan-out that hands each change to every open stream of this process.

The numbers come from the inventory rows the reservation path already keeps (``inventory``,
``type_inventory``); nothing extra is written when seats move. ``version`` is derived from the
numbers themselves (a hash), so it changes whenever any of them does, on every replica alike,
without a counter on the hot path.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from apps.booking.adapters.tables import inventory, type_inventory


@dataclass(frozen=True)
class AvailabilitySnapshot:
    """One event's seats as a client sees them: the event's quota and each ticket type's."""

    event_id: uuid.UUID
    capacity: int
    available: int
    held: int
    sold: int
    ticket_types: tuple[tuple[uuid.UUID, int], ...] = ()
    version: int = field(init=False)

    def __post_init__(self) -> None:
        figures = [self.capacity, self.available, self.held, self.sold]
        for type_id, available in self.ticket_types:
            figures += [type_id.hex, available]
        digest = hashlib.blake2b(json.dumps(figures).encode(), digest_size=8).digest()
        # 53 bits: exact in a JavaScript number, so a browser can compare it as it is.
        object.__setattr__(self, "version", int.from_bytes(digest, "big") >> 11)

    @property
    def etag(self) -> str:
        return f'"{self.version}"'

    def body(self) -> dict[str, Any]:
        return {
            "event_id": str(self.event_id),
            "capacity": self.capacity,
            "available": self.available,
            "held": self.held,
            "sold": self.sold,
            "ticket_types": [{"id": str(t), "available": a} for t, a in self.ticket_types],
            "version": self.version,
        }

    def json(self) -> str:
        return json.dumps(self.body(), separators=(",", ":"))


_READ = (
    sa.select(
        inventory.c.event_id,
        inventory.c.capacity,
        inventory.c.held,
        inventory.c.sold,
        inventory.c.status,
        type_inventory.c.ticket_type_id,
        type_inventory.c.capacity.label("type_capacity"),
        type_inventory.c.held.label("type_held"),
        type_inventory.c.sold.label("type_sold"),
    )
    .select_from(
        inventory.outerjoin(
            type_inventory,
            sa.and_(type_inventory.c.event_id == inventory.c.event_id, type_inventory.c.active),
        )
    )
    .where(inventory.c.event_id.in_(sa.bindparam("event_ids", expanding=True)))
    .order_by(inventory.c.event_id, type_inventory.c.position, type_inventory.c.ticket_type_id)
)


async def read_availability(
    conn: AsyncConnection, event_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, AvailabilitySnapshot]:
    """The availability of each of ``event_ids`` that booking knows, in ONE statement (plain
    SQL: PostgreSQL and SQLite alike). A type's ``available`` is the least of its own seats left
    and the event's (every type draws from the event's quota); a cancelled event has none."""
    ids = list(event_ids)
    if not ids:
        return {}
    rows = (await conn.execute(_READ, {"event_ids": ids})).all()
    events: dict[uuid.UUID, Any] = {}
    types: dict[uuid.UUID, list[tuple[uuid.UUID, int]]] = {}
    for r in rows:
        if r.event_id not in events:
            events[r.event_id] = r
            types[r.event_id] = []
        if r.ticket_type_id is not None:
            left = _event_left(r)
            if r.type_capacity is not None:
                left = min(left, max(r.type_capacity - r.type_held - r.type_sold, 0))
            types[r.event_id].append((r.ticket_type_id, left))
    return {
        event_id: AvailabilitySnapshot(
            event_id=event_id,
            capacity=r.capacity,
            available=_event_left(r),
            held=r.held,
            sold=r.sold,
            ticket_types=tuple(types[event_id]),
        )
        for event_id, r in events.items()
    }


def _event_left(r: Any) -> int:
    return 0 if r.status == "cancelled" else max(r.capacity - r.held - r.sold, 0)


class Subscription:
    """One open stream: a queue holding at most the latest snapshot not yet sent. A slow client
    never holds anything up; it skips the snapshots it was too slow for and gets the newest."""

    def __init__(self, event_id: uuid.UUID) -> None:
        self.event_id = event_id
        self._queue: asyncio.Queue[AvailabilitySnapshot] = asyncio.Queue(maxsize=1)
        self.sent: int | None = None  # version of the last snapshot handed to the client

    def offer(self, snapshot: AvailabilitySnapshot) -> None:
        if snapshot.version == self.sent:
            return
        if self._queue.full():
            self._queue.get_nowait()  # superseded: drop it, keep the newest
        self._queue.put_nowait(snapshot)

    async def next(self) -> AvailabilitySnapshot:
        """The next snapshot that differs from the last one sent (waits for a change)."""
        while True:
            snapshot = await self._queue.get()
            if snapshot.version != self.sent:
                self.sent = snapshot.version
                return snapshot


class LiveAvailability:
    """This process's open streams by event, and the last snapshot seen of each such event.

    One watcher (``apps/booking/entrypoints/live.py``) reads every watched event in one
    statement per tick and calls :meth:`publish`; streams only ever wait on their own queue, so
    a thousand streams on one event cost the database what one does."""

    def __init__(self) -> None:
        self._subscribers: dict[uuid.UUID, set[Subscription]] = {}
        self._latest: dict[uuid.UUID, AvailabilitySnapshot] = {}
        self._reading: dict[uuid.UUID, asyncio.Future[AvailabilitySnapshot | None]] = {}
        self.reads = 0  # watcher reads so far (each is one statement), for tests and metrics
        self.wake = asyncio.Event()  # set when the first stream of an event opens

    def watched(self) -> list[uuid.UUID]:
        return list(self._subscribers)

    def latest(self, event_id: uuid.UUID) -> AvailabilitySnapshot | None:
        """The last snapshot the watcher saw of an event with open streams (None: not watched
        or not read yet)."""
        return self._latest.get(event_id)

    async def first(
        self,
        event_id: uuid.UUID,
        read: Callable[[], Awaitable[AvailabilitySnapshot | None]],
    ) -> AvailabilitySnapshot | None:
        """What a stream's request reads before it answers (None: booking does not know the
        event, a 404): the watcher's last snapshot, else one ``read`` shared by every stream
        that opens meanwhile (a thousand opening at once make one read, not a thousand). The
        stream itself starts from :meth:`open`."""
        latest = self._latest.get(event_id)
        if latest is not None:
            return latest
        pending = self._reading.get(event_id)
        if pending is None:
            pending = asyncio.ensure_future(read())
            self._reading[event_id] = pending
            pending.add_done_callback(lambda _: self._reading.pop(event_id, None))
        return await asyncio.shield(pending)  # one waiter leaving does not cancel the others' read

    def open(
        self, event_id: uuid.UUID, read: AvailabilitySnapshot
    ) -> tuple[Subscription, AvailabilitySnapshot]:
        """Subscribe a new stream of the event; returns it with the snapshot to send it first.

        ``read`` is what the stream's request read, before this subscription: a change made
        since went to the streams subscribed then, not to this one. So the stream starts from
        the watcher's last snapshot when there is one (every later change is handed on from
        it, to this stream too), else from ``read`` (the watcher's first read of the event goes
        to every stream, so a change made since ``read`` comes with it). Nothing awaits
        between subscribing and choosing: no tick can fall in between."""
        sub = self.subscribe(event_id)
        first = self._latest.get(event_id, read)
        sub.sent = first.version
        return sub, first

    def subscribe(self, event_id: uuid.UUID) -> Subscription:
        sub = Subscription(event_id)
        subs = self._subscribers.setdefault(event_id, set())
        if not subs:
            self.wake.set()
        subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subscribers.get(sub.event_id)
        if subs is None:
            return
        subs.discard(sub)
        if not subs:
            del self._subscribers[sub.event_id]
            self._latest.pop(sub.event_id, None)

    def streams(self, event_id: uuid.UUID | None = None) -> int:
        if event_id is not None:
            return len(self._subscribers.get(event_id, ()))
        return sum(len(s) for s in self._subscribers.values())

    def publish(self, snapshots: dict[uuid.UUID, AvailabilitySnapshot]) -> int:
        """Hand each changed snapshot to its event's streams; returns how many events changed."""
        changed = 0
        for event_id, snapshot in snapshots.items():
            subs = self._subscribers.get(event_id)
            if not subs:
                continue
            last = self._latest.get(event_id)
            self._latest[event_id] = snapshot
            if last is not None and last.version == snapshot.version:
                continue
            changed += 1
            for sub in subs:
                sub.offer(snapshot)
        return changed
