"""The events service's vouchers table. Takes the unit of work's connection; never commits."""

from __future__ import annotations

import uuid
from dataclasses import fields

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from apps.events.adapters.tables import vouchers
from apps.events.domain import Voucher
from kit.tables import update_by_id

_COLUMNS = [f.name for f in fields(Voucher)]


def _row(v: Voucher) -> dict[str, object]:
    values = {k: getattr(v, k) for k in _COLUMNS}
    values["ticket_type_ids"] = [str(t) for t in v.ticket_type_ids]
    return values


def _to_voucher(row: sa.Row) -> Voucher:
    values = {k: getattr(row, k) for k in _COLUMNS}
    values["ticket_type_ids"] = tuple(uuid.UUID(t) for t in row.ticket_type_ids)
    return Voucher(**values)


class VoucherRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    @staticmethod
    async def any_exist(conn: AsyncConnection, _routing_key: str) -> bool:
        """Whether the service has any voucher: then booking's messages must reach it, to count
        the uses (kit.bindings)."""
        return bool(await conn.scalar(sa.select(sa.exists().select_from(vouchers))))

    async def add(self, v: Voucher) -> None:
        await self.conn.execute(vouchers.insert().values(**_row(v)))

    async def save(self, v: Voucher) -> None:
        """Write a changed voucher's terms (never ``used``, which booking's messages move)."""
        values = _row(v)
        del values["used"]
        await self.conn.execute(update_by_id(vouchers, values))

    async def by_code(self, event_id: uuid.UUID, code: str) -> Voucher | None:
        row = (
            await self.conn.execute(
                sa.select(vouchers).where(vouchers.c.event_id == event_id, vouchers.c.code == code)
            )
        ).first()
        return None if row is None else _to_voucher(row)

    async def get(self, event_id: uuid.UUID, voucher_id: uuid.UUID) -> Voucher | None:
        row = (
            await self.conn.execute(
                sa.select(vouchers).where(
                    vouchers.c.event_id == event_id, vouchers.c.id == voucher_id
                )
            )
        ).first()
        return None if row is None else _to_voucher(row)

    async def of_event(self, event_id: uuid.UUID) -> list[Voucher]:
        rows = await self.conn.execute(
            sa.select(vouchers)
            .where(vouchers.c.event_id == event_id)
            .order_by(vouchers.c.created_at, vouchers.c.code)
        )
        return [_to_voucher(r) for r in rows]

    async def count_use(self, event_id: uuid.UUID, code: str, delta: int) -> bool:
        """Add ``delta`` to the voucher's uses as booking reported them; False: no such voucher."""
        res = await self.conn.execute(
            vouchers.update()
            .where(vouchers.c.event_id == event_id, vouchers.c.code == code)
            .values(used=vouchers.c.used + delta)
        )
        return res.rowcount == 1
