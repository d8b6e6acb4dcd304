"""The analytics read model (events, bookings, payments) and the kit tables. 2026-11-27."""

import sqlalchemy as sa

from kit.alembic_env import InitialSchema
from kit.tables import UtcDateTime

revision = "0001"
down_revision = None

Money = sa.Numeric(14, 2)

# This migration's own frozen copy of its tables (see InitialSchema).
schema = InitialSchema()
schema.table(
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
    sa.Index("ix_events_organizer_id", "organizer_id"),
)
schema.table(
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
    *(
        sa.Index(f"ix_bookings_{column}", column)
        for column in ("event_id", "created_at", "confirmed_at", "cancelled_at", "expired_at")
    ),
)
schema.table(
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
    *(
        sa.Index(f"ix_payments_{column}", column)
        for column in ("booking_id", "event_id", "succeeded_at", "failed_at", "refunded_at")
    ),
)

upgrade, downgrade = schema.upgrade, schema.downgrade
