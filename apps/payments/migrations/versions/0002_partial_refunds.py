"""Partial refunds: what each payment has given back so far, and one row per refund.

Revision ID: 0002
Revises: 0001
Create Date: 2027-01-15

A payment can now be refunded in several parts (an organizer's partial refund, a self-service
cancellation minus a fee). ``payments.refunded_amount`` is the running total, raised by one
conditional UPDATE per refund and capped by a CHECK at the captured ``amount``; ``refunds`` keeps
each refund under the id booking gave it, so the same refund asked twice is made once.
Payments refunded before this revision had been refunded in full.
"""

import sqlalchemy as sa
from alembic import op

from kit.tables import UtcDateTime

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.add_column(
        "payments",
        sa.Column(
            "refunded_amount",
            sa.Numeric(14, 2),
            nullable=False,
            server_default="0",
            comment="everything refunded of this payment so far; never above amount",
        ),
    )
    op.execute("UPDATE payments SET refunded_amount = amount WHERE status = 'refunded'")
    if op.get_bind().dialect.name == "postgresql":
        # SQLite cannot add a constraint to an existing table (one writer there anyway; the
        # conditional UPDATE enforces the same limit on both).
        op.create_check_constraint(
            "ck_payments_refunded_within_amount",
            "payments",
            "refunded_amount >= 0 AND refunded_amount <= amount",
        )
    op.create_table(
        "refunds",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("payment_id", sa.Uuid, nullable=False, index=True),
        sa.Column("booking_id", sa.Uuid, nullable=False),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(30), nullable=False),
        sa.Column("provider_reference", sa.String(100), nullable=True),
        sa.Column("failure_reason", sa.String(100), nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.CheckConstraint("amount > 0", name="ck_refunds_amount_positive"),
    )


def downgrade() -> None:
    op.drop_table("refunds")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("ck_payments_refunded_within_amount", "payments")
    op.drop_column("payments", "refunded_amount")
