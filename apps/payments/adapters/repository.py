"""Tables of booking dues and payments. Take the unit of work's connection; never commit.

What booking's messages do to a due is one write each, declared once (``*_statement`` below, see
``kit.inbox``): on PostgreSQL the consumer runs it with its inbox mark as ONE statement, on
SQLite after the mark in a unit of work.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import asdict, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from kit.inbox import Statement, Writes, insert_from_mark, once_per_message
from kit import outbox
from kit.listing import where_given
from kit.pagination import newest_first
from kit.tables import update_by_id
from apps.payments.adapters.tables import booking_dues, payments, refunds
from apps.payments.domain import BookingDue, DueStatus, Payment, Refund

_DUE_COLUMNS = [f.name for f in fields(BookingDue)]
_PAYMENT_COLUMNS = [f.name for f in fields(Payment)]


def _to_due(row: sa.Row) -> BookingDue:
    return BookingDue(**{k: getattr(row, k) for k in _DUE_COLUMNS})


def _to_payment(row: sa.Row) -> Payment:
    return Payment(**{k: getattr(row, k) for k in _PAYMENT_COLUMNS})


def _due_values(due: BookingDue) -> dict[str, object]:
    return {k: getattr(due, k) for k in _DUE_COLUMNS}


# --- what a consumed message writes, with the consumer's inbox mark -----------------------------

_ADD_DUE = once_per_message(insert_from_mark(booking_dues, "ON CONFLICT (booking_id) DO NOTHING"))


@functools.cache
def _end_due(from_statuses: tuple[DueStatus, ...]) -> Writes:
    """Built once per guard (the domain's few constant tuples of statuses, written as literals:
    an expanding ``IN`` parameter re-rendered the SQL at every execution, and ``= ANY(array)``
    is PostgreSQL's only)."""
    if not all(s.isidentifier() for s in from_statuses):  # status names, never input
        raise ValueError(f"not statuses: {from_statuses!r}")
    statuses = ", ".join(f"'{s}'" for s in from_statuses)
    return once_per_message(
        insert_from_mark(
            booking_dues,
            "ON CONFLICT (booking_id) DO UPDATE SET status = EXCLUDED.status, "
            f"updated_at = EXCLUDED.updated_at WHERE t.status IN ({statuses})",
        )
    )


def add_due_statement(due: BookingDue) -> Statement:
    """Record ``due`` unless the booking is already known."""
    return Statement(_ADD_DUE, _due_values(due))


def end_due_statement(due: BookingDue, *, from_statuses: Sequence[DueStatus]) -> Statement:
    """Move the booking to ``due.status`` if it is in one of ``from_statuses``; record it in
    that state if it is not known yet (its creation may arrive later, and must not reopen
    it). One write, so it cannot race a concurrent :func:`add_due_statement`."""
    return Statement(_end_due(tuple(from_statuses)), _due_values(due))


# Built once: a statement made per call costs more CPU to build (and to find in SQLAlchemy's
# compiled cache) than its round trip to PostgreSQL.
_DUE = sa.select(booking_dues).where(booking_dues.c.booking_id == sa.bindparam("booking_id"))
_DUE_FOR_UPDATE = _DUE.with_for_update()
_SET_DUE_STATUS = (
    booking_dues.update()
    .where(booking_dues.c.booking_id == sa.bindparam("due_booking_id"))
    .values(status=sa.bindparam("new_status"), updated_at=sa.bindparam("now"))
)
_ADD_PAYMENT = payments.insert()

# A refund's share of the payment taken in ONE conditional statement: of any number of
# concurrent refunds, those that would take the total above what was captured change nothing
# (and the CHECK on the column would refuse them anyway). Only a succeeded payment captured money.
_TAKE_REFUND = (
    payments.update()
    .where(
        payments.c.id == sa.bindparam("payment_id"),
        payments.c.status == "succeeded",
        payments.c.refunded_amount + sa.bindparam("share") <= payments.c.amount,
    )
    .values(
        refunded_amount=payments.c.refunded_amount + sa.bindparam("share"),
        updated_at=sa.bindparam("now"),
    )
    .returning(payments.c.refunded_amount)
)
_GIVE_BACK_REFUND = (
    payments.update()
    .where(payments.c.id == sa.bindparam("payment_id"))
    .values(
        refunded_amount=payments.c.refunded_amount - sa.bindparam("share"),
        updated_at=sa.bindparam("now"),
    )
)
_REFUND = sa.select(refunds).where(refunds.c.id == sa.bindparam("refund_id"))
_REFUND_COLUMNS = [f.name for f in fields(Refund)]


def _settle_statement() -> sa.Select:
    """A charge's outcome as ONE statement (PostgreSQL, inside the caller's transaction): the
    payment row, the due's new status and the outbox row of its message, as data-modifying
    CTEs (what ``add`` + ``DueRepository.set_status`` + the unit of work's outbox insert do in
    three round trips)."""
    paid = (
        payments.insert()
        .values({c.name: sa.bindparam(f"p_{c.name}") for c in payments.c})
        .returning(payments.c.id)
        .cte("paid")
    )
    due = (
        booking_dues.update()
        .where(booking_dues.c.booking_id == sa.bindparam("due_booking_id"))
        .values(status=sa.bindparam("new_status"), updated_at=sa.bindparam("now"))
        .returning(booking_dues.c.booking_id)
        .cte("due")
    )
    written = outbox.insert_cte("written")  # the kit's: its parameters from statement_params
    return sa.select(sa.select(sa.func.count()).select_from(paid).scalar_subquery()).add_cte(
        due, written
    )


_SETTLE = _settle_statement()


class DueRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def get(self, booking_id: uuid.UUID, *, for_update: bool = False) -> BookingDue | None:
        stmt = _DUE_FOR_UPDATE if for_update else _DUE
        row = (await self.conn.execute(stmt, {"booking_id": booking_id})).first()
        return _to_due(row) if row else None

    async def set_status(self, booking_id: uuid.UUID, status: DueStatus, *, now: datetime) -> None:
        await self.conn.execute(
            _SET_DUE_STATUS, {"due_booking_id": booking_id, "new_status": status, "now": now}
        )


class PaymentRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, payment: Payment) -> None:
        await self.conn.execute(_ADD_PAYMENT, {k: getattr(payment, k) for k in _PAYMENT_COLUMNS})

    async def settle(
        self,
        payment: Payment,
        *,
        due_status: DueStatus,
        now: datetime,
        outbox_row: dict[str, Any],
    ) -> None:
        """``add(payment)``, the due's ``set_status`` and ``outbox_row`` (published by the
        caller's unit of work with ``inline=True``): one statement on PostgreSQL, three on
        SQLite."""
        if self.conn.dialect.name != "postgresql":
            await self.add(payment)
            await DueRepository(self.conn).set_status(payment.booking_id, due_status, now=now)
            await outbox.insert_rows(self.conn, [outbox_row])
            return
        params: dict[str, object] = {f"p_{k}": getattr(payment, k) for k in _PAYMENT_COLUMNS}
        params.update(outbox.statement_params(outbox_row))
        params.update(due_booking_id=payment.booking_id, new_status=due_status, now=now)
        await self.conn.execute(_SETTLE, params)

    async def take_refund(
        self, payment_id: uuid.UUID, amount: Decimal, *, now: datetime
    ) -> Decimal | None:
        """Add ``amount`` to the payment's refunded total if it stays within what was captured:
        the new total, or None (nothing changed) if it would not."""
        row = (
            await self.conn.execute(
                _TAKE_REFUND, {"payment_id": payment_id, "share": amount, "now": now}
            )
        ).first()
        return None if row is None else row.refunded_amount

    async def give_back_refund(
        self, payment_id: uuid.UUID, amount: Decimal, *, now: datetime
    ) -> None:
        """Undo :meth:`take_refund` for a refund the provider refused."""
        await self.conn.execute(
            _GIVE_BACK_REFUND, {"payment_id": payment_id, "share": amount, "now": now}
        )

    async def get(self, payment_id: uuid.UUID) -> Payment | None:
        row = (
            await self.conn.execute(sa.select(payments).where(payments.c.id == payment_id))
        ).first()
        return _to_payment(row) if row else None

    async def for_booking(
        self, booking_id: uuid.UUID, *, for_update: bool = False
    ) -> Payment | None:
        stmt = sa.select(payments).where(payments.c.booking_id == booking_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = (await self.conn.execute(stmt)).first()
        return _to_payment(row) if row else None

    async def save(self, payment: Payment) -> None:
        await self.conn.execute(update_by_id(payments, asdict(payment)))

    async def page(
        self,
        *,
        limit: int,
        after: tuple[datetime, uuid.UUID] | None,
        user_id: uuid.UUID | None,
        booking_id: uuid.UUID | None,
    ) -> list[Payment]:
        """Newest first."""
        filters = where_given(payments, user_id=user_id, booking_id=booking_id)
        stmt = newest_first(payments, *filters, limit=limit, before=after)
        return [_to_payment(r) for r in (await self.conn.execute(stmt)).all()]


class RefundRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def get(self, refund_id: uuid.UUID) -> Refund | None:
        row = (await self.conn.execute(_REFUND, {"refund_id": refund_id})).first()
        return Refund(**{k: getattr(row, k) for k in _REFUND_COLUMNS}) if row else None

    async def add(self, refund: Refund) -> None:
        await self.conn.execute(refunds.insert(), asdict(refund))
