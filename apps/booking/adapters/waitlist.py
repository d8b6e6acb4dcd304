"""The waiting list's tables (``waitlist_entries``, migration 0008) and the seat reads and moves
it needs. Takes the unit of work's connection; never commits. Works on PostgreSQL and SQLite.

Lock order (repository.py's, extended): booking rows, then the event's inventory row, then its
type rows (sorted by id), then user-hold rows, then waiting-list rows. An offer is made while the
event's inventory and type rows are locked (``lock_free_seats``) until COMMIT, so the free seats
it counts cannot be taken by anyone else before its own hold is applied; its user's held seats
are counted at once, by the conditional UPDATE that checks the user's cap
(``take_user_seats``), as ``booking_reserve`` counts them for any other hold.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields, replace
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from apps.booking.adapters.repository import insert_booking
from apps.booking.adapters.tables import (
    bookings,
    inventory,
    type_inventory,
    user_holds,
    waitlist_entries,
)
from apps.booking.domain import Booking
from kit.dialects import insert_for

EntryStatus = str  # waiting | offered | left (the table's CHECK)


@dataclass(frozen=True)
class EntryRow:
    """One ``waitlist_entries`` row, and for an offer its booking's status and expiry."""

    id: uuid.UUID
    seq: int
    event_id: uuid.UUID
    user_id: uuid.UUID
    ticket_type_id: uuid.UUID | None
    quantity: int
    status: EntryStatus
    booking_id: uuid.UUID | None
    hold_seconds: int
    created_at: datetime
    updated_at: datetime
    max_held_per_user: int  # the user's cap of held seats when the entry joined (migration 0010)
    booking_status: str | None = None
    expires_at: datetime | None = None
    position: int | None = None  # 1 = next to be served (waiting entries only)
    user_held: int = 0  # seats its user holds now (``waiting`` only: what the serve reads)


_ENTRY_COLUMNS = [f.name for f in fields(EntryRow)][:12]


@dataclass(frozen=True)
class FreeType:
    """A ticket type as the waiting list sees it: what it costs and how many seats it has left
    (None: only the event's quota limits it)."""

    ticket_type_id: uuid.UUID
    name: str
    price: Decimal
    free: int | None
    active: bool
    sales_start: datetime | None
    sales_end: datetime | None
    max_per_order: int | None
    position: int


@dataclass(frozen=True)
class FreeSeats:
    """An event's seats free for the waiting list, counted under the event's locks."""

    event_id: uuid.UUID
    status: str
    currency: str
    starts_at: datetime | None
    free: int
    types: tuple[FreeType, ...]
    capacity: int = 0


# Seat moves this transaction has queued and PostgreSQL applies at COMMIT (migration 0003): rows
# of other transactions are never visible (uncommitted, or deleted by the commit that applied
# them), so these are exactly the seats this transaction frees (negative) or takes. Voucher rows
# (migration 0007) share the table and the event id but move a voucher's `used`, not seats: a
# hold expired with its voucher once counted its use given back as one more free seat.
_PENDING_MOVES = sa.text(
    """
SELECT ticket_type_id, coalesce(sum(held + sold), 0) AS delta FROM seat_moves
WHERE event_id = CAST(:event_id AS uuid) AND voucher_code IS NULL GROUP BY ticket_type_id
"""
)
# ... and the users' held seats it frees (a lapsed or cancelled hold of someone now waiting).
_PENDING_USER_MOVES = sa.text(
    "SELECT user_id, sum(held) AS delta FROM seat_moves WHERE user_id IS NOT NULL GROUP BY user_id"
)


def _position() -> sa.ScalarSelect[int]:
    """An entry's place in its event's queue (1: next), as a correlated subquery."""
    ahead = waitlist_entries.alias("ahead")
    return (
        sa.select(sa.func.count())
        .where(
            ahead.c.event_id == waitlist_entries.c.event_id,
            ahead.c.status == "waiting",
            ahead.c.seq <= waitlist_entries.c.seq,
        )
        .scalar_subquery()
    )


class WaitlistRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    @property
    def _postgres(self) -> bool:
        return self.conn.dialect.name == "postgresql"

    # --- the event's seats -------------------------------------------------------------------

    async def lock_free_seats(self, event_id: uuid.UUID) -> FreeSeats | None:
        """Lock the event's inventory row, then its type rows (sorted by id), and count the
        seats free once this transaction's own queued seat moves are applied. None: unknown."""
        inv = (
            await self.conn.execute(
                sa.select(inventory).where(inventory.c.event_id == event_id).with_for_update()
            )
        ).first()
        if inv is None:
            return None
        type_rows = (
            await self.conn.execute(
                sa.select(type_inventory)
                .where(type_inventory.c.event_id == event_id)
                .order_by(type_inventory.c.ticket_type_id)
                .with_for_update()
            )
        ).all()
        pending: dict[uuid.UUID | None, int] = {}
        if self._postgres:
            for r in await self.conn.execute(_PENDING_MOVES, {"event_id": event_id}):
                pending[r.ticket_type_id] = int(r.delta)
        types = tuple(
            sorted(
                (
                    FreeType(
                        ticket_type_id=t.ticket_type_id,
                        name=t.name,
                        price=t.price,
                        free=None
                        if t.capacity is None
                        else t.capacity - t.held - t.sold - pending.get(t.ticket_type_id, 0),
                        active=t.active,
                        sales_start=t.sales_start,
                        sales_end=t.sales_end,
                        max_per_order=t.max_per_order,
                        position=t.position,
                    )
                    for t in type_rows
                ),
                key=lambda t: (t.position, t.ticket_type_id),
            )
        )
        return FreeSeats(
            event_id=event_id,
            status=inv.status,
            currency=inv.currency,
            starts_at=inv.starts_at,
            free=inv.capacity - inv.held - inv.sold - pending.get(None, 0),
            types=types,
            capacity=inv.capacity,
        )

    async def hold_for_offer(self, booking: Booking) -> None:
        """Write the offered pending ``booking`` and its lines. Its event's seats are moved by
        the caller (``BookingRepository.move_seats``, so at COMMIT after the seats this
        transaction releases); its user's, by ``take_user_seats`` before."""
        await insert_booking(self.conn, booking)

    # --- the user's held seats ---------------------------------------------------------------

    async def _pending_user_moves(self) -> dict[uuid.UUID, int]:
        """Users' held seats this transaction has queued to move at COMMIT (PostgreSQL; SQLite
        moves them in place)."""
        if not self._postgres:
            return {}
        return {r.user_id: int(r.delta) for r in await self.conn.execute(_PENDING_USER_MOVES)}

    async def take_user_seats(self, user_id: uuid.UUID, quantity: int, cap: int) -> bool:
        """Count ``quantity`` more seats held by the user, only if they then hold at most
        ``cap`` (this transaction's own queued moves of theirs counted): one conditional UPDATE
        that locks the user's row until COMMIT, as ``booking_reserve`` takes a hold's. False:
        over the cap, nothing changed."""
        await self.conn.execute(
            insert_for(self.conn, user_holds)
            .values(user_id=user_id, held=0)
            .on_conflict_do_nothing()
        )
        pending = (await self._pending_user_moves()).get(user_id, 0)
        res = await self.conn.execute(
            user_holds.update()
            .where(
                user_holds.c.user_id == user_id,
                user_holds.c.held + pending + quantity <= cap,
            )
            .values(held=user_holds.c.held + quantity)
        )
        return res.rowcount == 1

    async def give_back_user_seats(self, user_id: uuid.UUID, quantity: int) -> None:
        """Undo :meth:`take_user_seats` (the offer was not made after all)."""
        await self.conn.execute(
            user_holds.update()
            .where(user_holds.c.user_id == user_id)
            .values(held=user_holds.c.held - quantity)
        )

    # --- entries -----------------------------------------------------------------------------

    async def has_waiting(self, event_id: uuid.UUID) -> bool:
        stmt = sa.select(
            sa.exists().where(
                waitlist_entries.c.event_id == event_id, waitlist_entries.c.status == "waiting"
            )
        )
        return bool((await self.conn.execute(stmt)).scalar())

    async def live_entry_of(self, event_id: uuid.UUID, user_id: uuid.UUID) -> uuid.UUID | None:
        """The user's entry in the event's list that is still in play, if any: waiting, or
        offered with the offer's booking still pending."""
        stmt = (
            sa.select(waitlist_entries.c.id)
            .select_from(
                waitlist_entries.outerjoin(bookings, bookings.c.id == waitlist_entries.c.booking_id)
            )
            .where(
                waitlist_entries.c.user_id == user_id,
                waitlist_entries.c.event_id == event_id,
                sa.or_(
                    waitlist_entries.c.status == "waiting",
                    sa.and_(waitlist_entries.c.status == "offered", bookings.c.status == "pending"),
                ),
            )
            .limit(1)
        )
        return (await self.conn.execute(stmt)).scalar()  # type: ignore[no-any-return]

    async def add(self, entry: EntryRow) -> EntryRow:
        """Insert a waiting entry; it with its ``seq`` and ``position``."""
        values = {k: getattr(entry, k) for k in _ENTRY_COLUMNS if k != "seq"}
        seq = (
            await self.conn.execute(
                waitlist_entries.insert().values(**values).returning(waitlist_entries.c.seq)
            )
        ).scalar_one()
        got = await self.get(entry.id)
        assert got is not None and got.seq == seq
        return got

    def _select(self) -> sa.Select[tuple[object, ...]]:
        return (
            sa.select(
                waitlist_entries,
                bookings.c.status.label("booking_status"),
                bookings.c.expires_at,
                sa.case((waitlist_entries.c.status == "waiting", _position())).label("position"),
            )
            .select_from(
                waitlist_entries.outerjoin(bookings, bookings.c.id == waitlist_entries.c.booking_id)
            )
            .order_by(waitlist_entries.c.seq)
        )

    @staticmethod
    def _row(r: sa.Row) -> EntryRow:
        m = r._mapping
        return EntryRow(**{f.name: m[f.name] for f in fields(EntryRow) if f.name in m})

    async def get(self, entry_id: uuid.UUID, *, for_update: bool = False) -> EntryRow | None:
        stmt = self._select().where(waitlist_entries.c.id == entry_id)
        if for_update:
            stmt = stmt.with_for_update(of=waitlist_entries)
        row = (await self.conn.execute(stmt)).first()
        return None if row is None else self._row(row)

    async def of_user(
        self, user_id: uuid.UUID, limit: int, *, after_seq: int | None = None
    ) -> list[EntryRow]:
        """The user's entries, oldest first (``left`` ones not listed): at most ``limit``, those
        after the entry ``after_seq`` (None: from the oldest)."""
        stmt = (
            self._select()
            .where(waitlist_entries.c.user_id == user_id, waitlist_entries.c.status != "left")
            .limit(limit)
        )
        if after_seq is not None:
            stmt = stmt.where(waitlist_entries.c.seq > after_seq)
        return [self._row(r) for r in await self.conn.execute(stmt)]

    async def waiting(self, event_id: uuid.UUID) -> list[EntryRow]:
        """The event's waiting entries in order (read under the event's lock), each with the
        seats its user holds (``user_held``, this transaction's own queued moves counted)."""
        stmt = (
            sa.select(
                waitlist_entries,
                sa.func.coalesce(user_holds.c.held, 0).label("user_held"),
            )
            .select_from(
                waitlist_entries.outerjoin(
                    user_holds, user_holds.c.user_id == waitlist_entries.c.user_id
                )
            )
            .where(waitlist_entries.c.event_id == event_id, waitlist_entries.c.status == "waiting")
            .order_by(waitlist_entries.c.seq)
        )
        pending = await self._pending_user_moves()
        return [
            replace(e, user_held=e.user_held + pending.get(e.user_id, 0))
            for e in map(self._row, await self.conn.execute(stmt))
        ]

    async def mark_offered(self, entry_id: uuid.UUID, booking_id: uuid.UUID, now: datetime) -> bool:
        """Waiting -> offered with its booking; False if it left meanwhile (nothing changed)."""
        res = await self.conn.execute(
            waitlist_entries.update()
            .where(waitlist_entries.c.id == entry_id, waitlist_entries.c.status == "waiting")
            .values(status="offered", booking_id=booking_id, updated_at=now)
        )
        return res.rowcount == 1

    async def mark_left(self, entry_id: uuid.UUID, now: datetime) -> None:
        await self.conn.execute(
            waitlist_entries.update()
            .where(waitlist_entries.c.id == entry_id)
            .values(status="left", booking_id=None, updated_at=now)
        )

    async def events_to_serve(self, limit: int) -> list[uuid.UUID]:
        """Events whose queue's head would fit in the event's free seats as committed (a
        safety net: seats freed at the very moment someone joined, or left free while the
        entries' users held too many seats). The head is the first entry whose user could
        take its offer now: those over their cap are passed over, as the serve does."""
        head = (
            sa.select(waitlist_entries.c.event_id, sa.func.min(waitlist_entries.c.seq).label("seq"))
            .select_from(
                waitlist_entries.outerjoin(
                    user_holds, user_holds.c.user_id == waitlist_entries.c.user_id
                )
            )
            .where(
                waitlist_entries.c.status == "waiting",
                sa.func.coalesce(user_holds.c.held, 0) + waitlist_entries.c.quantity
                <= waitlist_entries.c.max_held_per_user,
            )
            .group_by(waitlist_entries.c.event_id)
            .subquery()
        )
        stmt = (
            sa.select(head.c.event_id)
            .join(waitlist_entries, waitlist_entries.c.seq == head.c.seq)
            .join(inventory, inventory.c.event_id == head.c.event_id)
            .where(
                inventory.c.status == "scheduled",
                inventory.c.capacity - inventory.c.held - inventory.c.sold
                >= waitlist_entries.c.quantity,
            )
            .limit(limit)
        )
        return list((await self.conn.execute(stmt)).scalars())
