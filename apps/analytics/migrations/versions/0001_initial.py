"""analytics read model (events, bookings, payments) and the kit tables

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

from kit.tables import UtcDateTime, create_kit_tables, drop_kit_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Money = sa.Numeric(14, 2)


def upgrade() -> None:
    create_kit_tables(op)
    op.create_table(
        "events",
        sa.Column("event_id", sa.Uuid, primary_key=True),
        sa.Column("organizer_id", sa.Uuid, nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("venue", sa.String(300), nullable=False),
        sa.Column("starts_at", UtcDateTime, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("price", Money, nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False, comment="occurred_at of the snapshot"),
    )
    op.create_index("ix_events_organizer_id", "events", ["organizer_id"])

    op.create_table(
        "bookings",
        sa.Column("booking_id", sa.Uuid, primary_key=True),
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("user_id", sa.Uuid, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("amount", Money, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(20), nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=True),
        sa.Column("confirmed_at", UtcDateTime, nullable=True),
        sa.Column("cancelled_at", UtcDateTime, nullable=True),
        sa.Column("expired_at", UtcDateTime, nullable=True),
        sa.Column("cancel_reason", sa.String(40), nullable=True),
    )
    for column in ("event_id", "created_at", "confirmed_at", "cancelled_at", "expired_at"):
        op.create_index(f"ix_bookings_{column}", "bookings", [column])

    op.create_table(
        "payments",
        sa.Column("payment_id", sa.Uuid, primary_key=True),
        sa.Column("booking_id", sa.Uuid, nullable=False),
        sa.Column("user_id", sa.Uuid, nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=True),
        sa.Column("amount", Money, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(20), nullable=True),
        sa.Column("succeeded_at", UtcDateTime, nullable=True),
        sa.Column("failed_at", UtcDateTime, nullable=True),
        sa.Column("refunded_at", UtcDateTime, nullable=True),
        sa.Column("refunded_amount", Money, nullable=True),
        sa.Column("failure_reason", sa.Text, nullable=True),
    )
    for column in ("booking_id", "event_id", "succeeded_at", "failed_at", "refunded_at"):
        op.create_index(f"ix_payments_{column}", "payments", [column])


def downgrade() -> None:
    op.drop_table("payments")
    op.drop_table("bookings")
    op.drop_table("events")
    drop_kit_tables(op)
