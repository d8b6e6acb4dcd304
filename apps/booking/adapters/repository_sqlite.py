"""The booking repository on SQLite (the embedded all-in-one mode, deploy/local/embedded.py).

The PostgreSQL repository does each change in one tuned statement (CTEs that update, ``unnest``
arrays, ``make_interval``) that SQLite cannot run. Here the same changes are made with the
same guards, one plain statement at a time: a SQLite transaction holds the database's only
write lock from its first statement (``BEGIN IMMEDIATE``, kit.db), so a read followed by a
write sees no concurrent change — what the row locks and conditional updates give on PostgreSQL.
Only the statements differ; the handlers and the domain are the same.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa

from apps.booking.adapters.repository import (
    BookingRepository,
    ConcurrentModification,
    EventSnapshot,
    ReserveOutcome,
    insert_booking,
    seat_totals,
    voucher_totals,
)
from apps.booking.adapters.tables import (
    bookings,
    inventory,
    type_inventory,
    user_holds,
    vouchers,
)
from apps.booking.domain import Booking, Transition
from kit import outbox


class CapacityCheck(NamedTuple):
    """What ``set_capacity`` answers: applied (0/1) and the counters as they were before."""

    applied: int
    capacity: int
    held: int
    sold: int
    organizer_id: uuid.UUID


def _now() -> datetime:
    return datetime.now(UTC)


class SqliteBookingRepository(BookingRepository):
    """``BookingRepository``'s operations on SQLite (chosen by ``BookingDeps`` for a SQLite
    database)."""

    # --- the rows every change reads first, and the counters it moves ------------------------

    async def _event_row(self, event_id: uuid.UUID) -> sa.Row | None:
        return (
            await self.conn.execute(sa.select(inventory).where(inventory.c.event_id == event_id))
        ).first()

    async def _type_rows(self, event_id: uuid.UUID) -> dict[uuid.UUID, sa.Row]:
        rows = await self.conn.execute(
            sa.select(type_inventory).where(type_inventory.c.event_id == event_id)
        )
        return {r.ticket_type_id: r for r in rows}

    async def _add_to_event(self, event_id: uuid.UUID, now: datetime, **counts: int) -> None:
        """Add ``counts`` (``held=``, ``sold=``) to the event's row."""
        await self.conn.execute(
            inventory.update()
            .where(inventory.c.event_id == event_id)
            .values(updated_at=now, **{k: inventory.c[k] + n for k, n in counts.items()})
        )

    async def _add_to_type(
        self, event_id: uuid.UUID, type_id: uuid.UUID, now: datetime, **counts: int
    ) -> None:
        """Add ``counts`` (``held=``, ``sold=``) to one ticket type's row."""
        await self.conn.execute(
            type_inventory.update()
            .where(
                type_inventory.c.event_id == event_id, type_inventory.c.ticket_type_id == type_id
            )
            .values(updated_at=now, **{k: type_inventory.c[k] + n for k, n in counts.items()})
        )

    async def _take_seats(self, booking: Booking, counter: str, now: datetime) -> None:
        """Add the booking's seats to ``counter`` ("held" or "sold"): the event's row, then each
        line's type row sorted by id (PostgreSQL's lock order, kept here too)."""
        await self._add_to_event(booking.event_id, now, **{counter: booking.quantity})
        for ln in sorted(booking.lines, key=lambda x: x.ticket_type_id):
            await self._add_to_type(
                booking.event_id, ln.ticket_type_id, now, **{counter: ln.quantity}
            )

    # --- the repository's operations ---------------------------------------------------------

    async def reserve(
        self,
        booking: Booking,
        *,
        user_cap: int,
        outbox_row: dict[str, Any],
        notify: bool,
        voucher_version: int | None = None,
    ) -> ReserveOutcome:
        quantity, event_id = booking.quantity, booking.event_id
        now = booking.created_at
        inv = await self._event_row(event_id)
        if inv is None:
            return ReserveOutcome("event_unknown", None, None)
        available = inv.capacity - inv.held - inv.sold
        if inv.status != "scheduled":
            return ReserveOutcome("not_on_sale", inv.status, available)
        if inv.starts_at is not None and now >= inv.starts_at:
            return ReserveOutcome("sales_ended", inv.status, available)
        if available < quantity:
            lapsed = await self.has_lapsed_holds(event_id, now)
            return ReserveOutcome("sold_out", inv.status, available, lapsed=lapsed)
        if inv.currency != booking.currency:
            return ReserveOutcome("price_changed", inv.status, available)
        types = await self._type_rows(event_id)
        for ln in sorted(booking.lines, key=lambda x: x.ticket_type_id):  # as booking_reserve
            t = types.get(ln.ticket_type_id)
            why = None
            if t is None or not t.active:
                why = "type_unknown"
            elif t.price != ln.unit_price:
                why = "price_changed"
            elif t.sales_start is not None and now < t.sales_start:
                why = "sales_not_started"
            elif t.sales_end is not None and now >= t.sales_end:
                why = "sales_ended"
            elif t.max_per_order is not None and ln.quantity > t.max_per_order:
                why = "too_many"
            elif t.capacity is not None and t.capacity - t.held - t.sold < ln.quantity:
                why = "sold_out"
            if why is not None:
                left = None if t is None or t.capacity is None else t.capacity - t.held - t.sold
                lapsed = why == "sold_out" and await self.has_lapsed_holds(event_id, now)
                return ReserveOutcome(why, inv.status, available, ln.ticket_type_id, left, lapsed)  # type: ignore[arg-type]
        user_held = (
            await self.conn.execute(
                sa.select(user_holds.c.held).where(user_holds.c.user_id == booking.user_id)
            )
        ).scalar()
        if (user_held or 0) + quantity > user_cap:
            return ReserveOutcome("hold_limit", inv.status, available)
        if booking.voucher_code is not None:  # as booking_reserve: the voucher's uses last
            why = await self._take_voucher_use(booking, voucher_version, now)
            if why is not None:
                return ReserveOutcome(why, inv.status, available)  # type: ignore[arg-type]

        await self._take_seats(booking, "held", now)
        if user_held is None:
            await self.conn.execute(
                user_holds.insert().values(user_id=booking.user_id, held=quantity)
            )
        else:
            await self.conn.execute(
                user_holds.update()
                .where(user_holds.c.user_id == booking.user_id)
                .values(held=user_holds.c.held + quantity)
            )
        await insert_booking(self.conn, booking)
        await outbox.insert_rows(self.conn, [outbox_row])
        return ReserveOutcome("reserved", inv.status, available)

    async def _take_voucher_use(
        self, booking: Booking, version: int | None, now: datetime
    ) -> str | None:
        """Take one use of the booking's voucher; None, or why not (as booking_reserve says)."""
        v = await self.voucher(booking.event_id, booking.voucher_code or "")
        if v is None:
            return "voucher_unknown"
        if v.version != version:
            return "voucher_changed"
        if v.used >= v.max_uses or (v.valid_until is not None and now >= v.valid_until):
            return "voucher_exhausted"
        await self.conn.execute(
            vouchers.update()
            .where(vouchers.c.event_id == v.event_id, vouchers.c.code == v.code)
            .values(used=vouchers.c.used + 1, updated_at=now)
        )
        return None

    async def apply_snapshot(self, snapshot: EventSnapshot) -> bool:
        event_id = snapshot.event_id
        row = await self._event_row(event_id)
        now = _now()
        if row is None:
            await self.conn.execute(
                inventory.insert().values(**snapshot.columns(), held=0, sold=0, updated_at=now)
            )
        else:
            newer = row.version < snapshot.version
            cancels = snapshot.status == "cancelled" and row.status != "cancelled"
            if not (newer or cancels):
                return False
            await self.conn.execute(
                inventory.update()
                .where(inventory.c.event_id == event_id)
                .values(
                    capacity=max(snapshot.capacity, row.held + row.sold),
                    price=snapshot.price,
                    currency=snapshot.currency,
                    status="cancelled" if row.status == "cancelled" else snapshot.status,
                    version=max(snapshot.version, row.version),
                    updated_at=now,
                    starts_at=snapshot.starts_at,
                )
            )
        known = await self._type_rows(event_id)
        listed = {t.ticket_type_id for t in snapshot.ticket_types}
        for position, t in sorted(
            enumerate(snapshot.ticket_types), key=lambda p: p[1].ticket_type_id
        ):
            values = {
                "name": t.name,
                "price": t.price,
                "sales_start": t.sales_start,
                "sales_end": t.sales_end,
                "max_per_order": t.max_per_order,
                "position": position,
                "active": True,
                "updated_at": now,
            }
            old = known.get(t.ticket_type_id)
            if old is None:
                await self.conn.execute(
                    type_inventory.insert().values(
                        event_id=event_id,
                        ticket_type_id=t.ticket_type_id,
                        capacity=t.capacity,
                        held=0,
                        sold=0,
                        **values,
                    )
                )
            else:
                cap = None if t.capacity is None else max(t.capacity, old.held + old.sold)
                await self.conn.execute(
                    type_inventory.update()
                    .where(
                        type_inventory.c.event_id == event_id,
                        type_inventory.c.ticket_type_id == t.ticket_type_id,
                    )
                    .values(capacity=cap, **values)
                )
        gone = [k for k, r in known.items() if k not in listed and r.active]
        if gone:
            await self.conn.execute(
                type_inventory.update()
                .where(
                    type_inventory.c.event_id == event_id,
                    type_inventory.c.ticket_type_id.in_(gone),
                )
                .values(active=False, updated_at=now)
            )
        return True

    async def set_capacity(  # type: ignore[override]
        self, event_id: uuid.UUID, capacity: int
    ) -> CapacityCheck | None:
        row = await self._event_row(event_id)
        if row is None:
            return None
        applied = row.held + row.sold <= capacity
        if applied:
            await self.conn.execute(
                inventory.update()
                .where(inventory.c.event_id == event_id)
                .values(capacity=capacity, updated_at=_now())
            )
        return CapacityCheck(int(applied), row.capacity, row.held, row.sold, row.organizer_id)

    async def retake_seats(self, booking: Booking) -> bool:
        now = _now()
        inv = await self._event_row(booking.event_id)
        if (
            inv is None
            or inv.status != "scheduled"
            or inv.capacity - inv.held - inv.sold < booking.quantity
            or (inv.starts_at is not None and now >= inv.starts_at)
        ):
            return False
        types = await self._type_rows(booking.event_id)
        for ln in booking.lines:
            t = types.get(ln.ticket_type_id)
            if (
                t is None
                or not t.active
                or (t.capacity is not None and t.capacity - t.held - t.sold < ln.quantity)
                or (t.sales_start is not None and now < t.sales_start)
                or (t.sales_end is not None and now >= t.sales_end)
            ):
                return False
        if not await self.retake_voucher(booking):
            return False
        await self._take_seats(booking, "sold", _now())
        return True

    async def move_seats(self, transitions: Iterable[Transition]) -> None:
        transitions = list(transitions)
        per_event, per_type, per_user = seat_totals(transitions)
        now = _now()
        for event_id in sorted(per_event):
            held, sold = per_event[event_id]
            await self._add_to_event(event_id, now, held=held, sold=sold)
        for event_id, type_id in sorted(per_type, key=lambda k: (k[1], k[0])):
            held, sold = per_type[(event_id, type_id)]
            await self._add_to_type(event_id, type_id, now, held=held, sold=sold)
        for user_id in sorted(per_user):
            await self.conn.execute(
                user_holds.update()
                .where(user_holds.c.user_id == user_id)
                .values(held=user_holds.c.held + per_user[user_id])
            )
        per_voucher = voucher_totals(transitions)
        for event_id, code in sorted(per_voucher):
            await self.conn.execute(
                vouchers.update()
                .where(vouchers.c.event_id == event_id, vouchers.c.code == code)
                .values(used=vouchers.c.used + per_voucher[(event_id, code)], updated_at=now)
            )

    async def save(self, transitions: Sequence[Transition]) -> None:
        changed = 0
        for t in transitions:
            res = await self.conn.execute(
                bookings.update()
                .where(bookings.c.id == t.booking.id, bookings.c.status == t.previous)
                .values(
                    status=t.booking.status,
                    payment_id=t.booking.payment_id,
                    cancellation_reason=t.booking.cancellation_reason,
                    updated_at=t.booking.updated_at,
                )
            )
            changed += res.rowcount
        if changed != len(transitions):
            raise ConcurrentModification(
                f"{len(transitions) - changed} booking(s) changed under a lock"
            )
