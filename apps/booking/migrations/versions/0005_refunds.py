"""Refunds: the event's refund policy, what each booking has asked back, one row per refund

Revision ID: 0005
Revises: 0004
Create Date: 2027-01-15

- ``inventory.refund_*``: the event's refund policy, from the events service's snapshots (a
  buyer's own cancellation of a paid booking follows it; ``starts_at`` came with 0004).
- ``bookings.refund_requested_total``: everything booking has asked payments to give back for
  the booking, raised by one conditional UPDATE per refund so that concurrent refunds can never
  ask more than was paid (a CHECK caps it at ``amount`` too, on PostgreSQL).
- ``booking_refunds``: each refund asked (its amount, the fee kept, and its status from
  payments' answer: pending, succeeded, failed).

Existing rows: events get the default policy (self-service, 48 hours, no fee); a cancelled
booking that had been paid was refunded in full before this revision, so it has nothing left.
"""

import sqlalchemy as sa
from alembic import op

from kit.tables import UtcDateTime

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.add_column(
        "inventory",
        sa.Column("refund_self_service", sa.Boolean, nullable=False, server_default=sa.true()),
    )
    op.add_column(
        "inventory",
        sa.Column("refund_deadline_hours", sa.Integer, nullable=False, server_default="48"),
    )
    op.add_column(
        "inventory",
        sa.Column("refund_fee_percent", sa.Numeric(5, 2), nullable=False, server_default="0"),
    )
    op.add_column(
        "bookings",
        sa.Column("refund_requested_total", sa.Numeric(14, 2), nullable=False, server_default="0"),
    )
    op.execute(
        "UPDATE bookings SET refund_requested_total = amount "
        "WHERE status = 'cancelled' AND payment_id IS NOT NULL"
    )
    if postgres:  # SQLite cannot add a constraint to a table (one writer there anyway)
        op.create_check_constraint(
            "ck_bookings_refunds_within_amount",
            "bookings",
            "refund_requested_total >= 0 AND refund_requested_total <= amount",
        )
    op.create_table(
        "booking_refunds",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("booking_id", sa.Uuid, nullable=False, index=True),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        sa.Column("fee", sa.Numeric(14, 2), nullable=False, server_default="0"),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("requested_by", sa.Uuid, nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'succeeded', 'failed')", name="ck_booking_refunds_status"
        ),
    )


def downgrade() -> None:
    op.drop_table("booking_refunds")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("ck_bookings_refunds_within_amount", "bookings")
    with op.batch_alter_table("bookings") as batch:
        batch.drop_column("refund_requested_total")
    with op.batch_alter_table("inventory") as batch:
        batch.drop_column("refund_fee_percent")
        batch.drop_column("refund_deadline_hours")
        batch.drop_column("refund_self_service")
