"""Refund state of bookings (migration 0005): the event's refund policy on its inventory row,
each booking's ``refund_requested_total``, and ``booking_refunds``. Plain Core statements that
PostgreSQL and SQLite (the embedded mode) both run, so both repositories share them. Take the
unit of work's connection; never commit.

The columns 0005 added to ``inventory`` and ``bookings`` are named here (lightweight
``sa.table``) rather than on ``tables.py``'s tables: the repositories' row mappers and inserts
never see them, and they have server defaults.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from apps.booking.adapters.tables import metadata
from apps.booking.domain import RefundPolicy
from kit.tables import UtcDateTime

booking_refunds = sa.Table(
    "booking_refunds",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("booking_id", sa.Uuid, nullable=False, index=True),
    sa.Column("amount", sa.Numeric(14, 2), nullable=False),
    sa.Column("fee", sa.Numeric(14, 2), nullable=False, server_default="0"),
    sa.Column("status", sa.String(20), nullable=False, comment="pending | succeeded | failed"),
    sa.Column("reason", sa.String(40), nullable=False),
    sa.Column("requested_by", sa.Uuid, nullable=True),
    sa.Column("note", sa.String(500), nullable=True, comment="the organizer's reason (0009)"),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

_inventory = sa.table(
    "inventory",
    sa.column("event_id", sa.Uuid),
    sa.column("organizer_id", sa.Uuid),
    sa.column("version", sa.Integer),
    sa.column("starts_at", UtcDateTime),
    sa.column("refund_self_service", sa.Boolean),
    sa.column("refund_deadline_hours", sa.Integer),
    sa.column("refund_fee_percent", sa.Numeric(5, 2)),
)
_bookings = sa.table(
    "bookings",
    sa.column("id", sa.Uuid),
    sa.column("amount", sa.Numeric(14, 2)),
    sa.column("refund_requested_total", sa.Numeric(14, 2)),
)


@dataclass(frozen=True)
class EventTerms:
    """What refunds need to know of an event: who organizes it, when it starts, its policy."""

    organizer_id: uuid.UUID
    starts_at: datetime | None
    policy: RefundPolicy


@dataclass(frozen=True)
class RefundView:
    id: uuid.UUID
    booking_id: uuid.UUID
    amount: Decimal
    fee: Decimal
    status: str
    reason: str
    created_at: datetime
    note: str | None = None  # the organizer's own words, for the record


_SET_POLICY = (
    _inventory.update()
    .where(
        _inventory.c.event_id == sa.bindparam("e_id"),
        _inventory.c.version == sa.bindparam("e_version"),
    )
    .values(
        refund_self_service=sa.bindparam("self_service"),
        refund_deadline_hours=sa.bindparam("deadline_hours"),
        refund_fee_percent=sa.bindparam("fee_percent"),
    )
)
_TERMS = sa.select(
    _inventory.c.organizer_id,
    _inventory.c.starts_at,
    _inventory.c.refund_self_service,
    _inventory.c.refund_deadline_hours,
    _inventory.c.refund_fee_percent,
).where(_inventory.c.event_id == sa.bindparam("e_id"))

# A refund's share of the booking asked in ONE conditional statement: of any number of
# concurrent requests, those that would ask more than was paid change nothing.
_TAKE = (
    _bookings.update()
    .where(
        _bookings.c.id == sa.bindparam("b_id"),
        _bookings.c.refund_requested_total + sa.bindparam("share") <= _bookings.c.amount,
    )
    .values(refund_requested_total=_bookings.c.refund_requested_total + sa.bindparam("share"))
    .returning(_bookings.c.refund_requested_total, _bookings.c.amount)
)
_GIVE_BACK = (
    _bookings.update()
    .where(_bookings.c.id == sa.bindparam("b_id"))
    .values(refund_requested_total=_bookings.c.refund_requested_total - sa.bindparam("share"))
)
_ASKED = sa.select(_bookings.c.refund_requested_total).where(_bookings.c.id == sa.bindparam("b_id"))
# Only a pending refund takes payments' answer (a duplicate or late answer changes nothing).
_SETTLE = (
    booking_refunds.update()
    .where(booking_refunds.c.id == sa.bindparam("r_id"), booking_refunds.c.status == "pending")
    .values(status=sa.bindparam("new_status"), updated_at=sa.bindparam("now"))
    .returning(booking_refunds.c.booking_id, booking_refunds.c.amount)
)


async def apply_policy(
    conn: AsyncConnection, *, event_id: uuid.UUID, version: int, policy: RefundPolicy
) -> None:
    """Store the policy of the snapshot ``version``, if that snapshot is the one applied (an
    older one lost, see the repository's ``apply_snapshot``)."""
    await conn.execute(
        _SET_POLICY,
        {
            "e_id": event_id,
            "e_version": version,
            "self_service": policy.self_service,
            "deadline_hours": policy.deadline_hours_before_start,
            "fee_percent": policy.fee_percent,
        },
    )


async def terms(conn: AsyncConnection, event_id: uuid.UUID) -> EventTerms | None:
    row = (await conn.execute(_TERMS, {"e_id": event_id})).first()
    if row is None:
        return None
    return EventTerms(
        organizer_id=row.organizer_id,
        starts_at=row.starts_at,
        policy=RefundPolicy(
            self_service=row.refund_self_service,
            deadline_hours_before_start=row.refund_deadline_hours,
            fee_percent=Decimal(row.refund_fee_percent),
        ),
    )


async def take(conn: AsyncConnection, booking_id: uuid.UUID, amount: Decimal) -> Decimal | None:
    """Raise the booking's refund_requested_total by ``amount`` if it stays within what was
    paid: the new total, or None (nothing changed) if it would not."""
    row = (await conn.execute(_TAKE, {"b_id": booking_id, "share": amount})).first()
    return None if row is None else Decimal(row.refund_requested_total)


async def give_back(conn: AsyncConnection, booking_id: uuid.UUID, amount: Decimal) -> None:
    """Undo :func:`take` for a refund that was not made."""
    await conn.execute(_GIVE_BACK, {"b_id": booking_id, "share": amount})


async def asked(conn: AsyncConnection, booking_id: uuid.UUID) -> Decimal:
    return Decimal((await conn.execute(_ASKED, {"b_id": booking_id})).scalar_one())


async def add(conn: AsyncConnection, refund: RefundView, *, by: uuid.UUID | None) -> None:
    await conn.execute(
        booking_refunds.insert().values(
            **asdict(refund), requested_by=by, updated_at=refund.created_at
        )
    )


async def settle(
    conn: AsyncConnection, refund_id: uuid.UUID, status: str, *, now: datetime
) -> tuple[uuid.UUID, Decimal] | None:
    """Give a pending refund payments' answer: (booking id, amount), None if not pending."""
    row = (
        await conn.execute(_SETTLE, {"r_id": refund_id, "new_status": status, "now": now})
    ).first()
    return None if row is None else (row.booking_id, Decimal(row.amount))


async def of_bookings(
    conn: AsyncConnection, booking_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, list[RefundView]]:
    """Every refund of each booking that has one, oldest first (the last is the latest)."""
    ids = list(booking_ids)
    if not ids:
        return {}
    rows = (
        await conn.execute(
            sa.select(booking_refunds)
            .where(booking_refunds.c.booking_id.in_(ids))
            .order_by(booking_refunds.c.created_at, booking_refunds.c.id)
        )
    ).all()
    out: dict[uuid.UUID, list[RefundView]] = {}
    for r in rows:
        out.setdefault(r.booking_id, []).append(
            RefundView(
                r.id,
                r.booking_id,
                Decimal(r.amount),
                Decimal(r.fee),
                r.status,
                r.reason,
                r.created_at,
                r.note,
            )
        )
    return out
