"""Booking lines (seats per ticket type) and one row per refund (partial refunds). 2026-12-04.

Existing refunded payments get their one refund row (the whole refunded amount, at the time it
was recorded), keyed as a refund without an id is. Existing bookings keep no lines: the report
reads a booking without lines as one line of its event's implied ticket type.
"""

import uuid

import sqlalchemy as sa
from alembic import op

from kit.tables import UtcDateTime

revision = "0002"
down_revision = "0001"

Money = sa.Numeric(14, 2)


def whole_refund_key(payment_id: uuid.UUID) -> uuid.UUID:
    """Frozen copy of the rule (apps/analytics/domain.py has the live one)."""
    return uuid.uuid5(payment_id, "whole-refund")


def upgrade() -> None:
    op.add_column("bookings", sa.Column("lines", sa.JSON, nullable=True))
    refunds = op.create_table(
        "refunds",
        sa.Column("refund_key", sa.Uuid, primary_key=True),
        sa.Column("payment_id", sa.Uuid, nullable=False),
        sa.Column("booking_id", sa.Uuid, nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=True),
        sa.Column("amount", Money, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("refunded_at", UtcDateTime, nullable=False),
    )
    for column in ("payment_id", "event_id", "refunded_at"):
        op.create_index(f"ix_refunds_{column}", "refunds", [column])
    payments = sa.table(
        "payments",
        sa.column("payment_id", sa.Uuid),
        sa.column("booking_id", sa.Uuid),
        sa.column("event_id", sa.Uuid),
        sa.column("amount", Money),
        sa.column("refunded_amount", Money),
        sa.column("currency", sa.String),
        sa.column("refunded_at", UtcDateTime),
    )
    rows = op.get_bind().execute(sa.select(payments).where(payments.c.refunded_at.is_not(None)))
    values = [
        {
            "refund_key": whole_refund_key(r.payment_id),
            "payment_id": r.payment_id,
            "booking_id": r.booking_id,
            "event_id": r.event_id,
            "amount": r.refunded_amount if r.refunded_amount is not None else r.amount,
            "currency": r.currency,
            "refunded_at": r.refunded_at,
        }
        for r in rows.all()
    ]
    if values:
        op.bulk_insert(refunds, values)


def downgrade() -> None:
    op.drop_table("refunds")
    op.drop_column("bookings", "lines")
