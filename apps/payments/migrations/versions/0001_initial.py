"""Booking dues, payments, the card-network simulator's ledger, and the kit tables. 2026-11-27."""

import sqlalchemy as sa

from kit.alembic_env import InitialSchema
from kit.tables import UtcDateTime

revision = "0001"
down_revision = None

# This migration's own frozen copy of its tables (see InitialSchema).
schema = InitialSchema()
schema.table(
    "booking_dues",
    sa.Column("booking_id", sa.Uuid, primary_key=True),
    sa.Column("user_id", sa.Uuid, nullable=False),
    sa.Column("event_id", sa.Uuid, nullable=False),
    sa.Column("amount", sa.Numeric(14, 2), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("payment_id", sa.Uuid, nullable=False, unique=True),
    sa.Column("expires_at", UtcDateTime, nullable=True),
    sa.Column("correlation_id", sa.Uuid, nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
schema.table(
    "payments",
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("booking_id", sa.Uuid, nullable=False, unique=True),
    sa.Column("user_id", sa.Uuid, nullable=False),
    sa.Column("event_id", sa.Uuid, nullable=True),
    sa.Column("amount", sa.Numeric(14, 2), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("failure_reason", sa.String(100), nullable=True),
    sa.Column("provider_reference", sa.String(100), nullable=False),
    sa.Column("refund_reference", sa.String(100), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("refunded_at", UtcDateTime, nullable=True),
    sa.Index("ix_payments_user_id", "user_id"),
    sa.Index("ix_payments_created_at_id", "created_at", "id"),
)
schema.table(
    "simulator_charges",
    sa.Column("idempotency_key", sa.String(255), primary_key=True),
    sa.Column("operation", sa.String(10), nullable=False),
    sa.Column("reference", sa.String(100), nullable=False, unique=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("amount", sa.Numeric(14, 2), nullable=False),
    sa.Column("currency", sa.String(3), nullable=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("failure_reason", sa.String(100), nullable=True),
    sa.Column("charge_reference", sa.String(100), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False, server_default=sa.func.now()),
)

upgrade, downgrade = schema.upgrade, schema.downgrade
