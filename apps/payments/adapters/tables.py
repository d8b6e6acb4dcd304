from __future__ import annotations

import sqlalchemy as sa

from kit.tables import UtcDateTime, service_metadata

metadata = service_metadata()

# What each booking owes, learned from booking's messages (never from a client).
booking_dues = sa.Table(
    "booking_dues",
    metadata,
    sa.Column("booking_id", sa.Uuid, primary_key=True),
    sa.Column("user_id", sa.Uuid, nullable=False),
    sa.Column("event_id", sa.Uuid, nullable=False),
    sa.Column("amount", sa.Numeric(14, 2), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column(
        "payment_id",
        sa.Uuid,
        nullable=False,
        unique=True,
        comment="id reserved for the booking's payment; provider keys derive from it",
    ),
    sa.Column("expires_at", UtcDateTime, nullable=True),
    sa.Column(
        "correlation_id", sa.Uuid, nullable=True, comment="the booking saga's correlation id"
    ),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

payments = sa.Table(
    "payments",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("booking_id", sa.Uuid, nullable=False, unique=True),
    sa.Column("user_id", sa.Uuid, nullable=False, index=True),
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
    sa.Column(
        "refunded_amount",
        sa.Numeric(14, 2),
        nullable=False,
        server_default="0",
        comment="everything refunded of this payment so far; never above amount",
    ),
    sa.Index("ix_payments_created_at_id", "created_at", "id"),
    sa.CheckConstraint(
        "refunded_amount >= 0 AND refunded_amount <= amount",
        name="ck_payments_refunded_within_amount",
    ),
)

# One row per refund made or refused, under the id booking gave it: the same refund asked twice
# is found here and made once.
refunds = sa.Table(
    "refunds",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("payment_id", sa.Uuid, nullable=False, index=True),
    sa.Column("booking_id", sa.Uuid, nullable=False),
    sa.Column("amount", sa.Numeric(14, 2), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, comment="succeeded | failed"),
    sa.Column("reason", sa.String(30), nullable=False),
    sa.Column("provider_reference", sa.String(100), nullable=True),
    sa.Column("failure_reason", sa.String(100), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.CheckConstraint("amount > 0", name="ck_refunds_amount_positive"),
)

# The card-network simulator's own ledger (what a real provider keeps on its side): one row per
# idempotency key, so a replayed request returns the original result without a new charge.
simulator_charges = sa.Table(
    "simulator_charges",
    metadata,
    sa.Column("idempotency_key", sa.String(255), primary_key=True),
    sa.Column("operation", sa.String(10), nullable=False, comment="charge | refund"),
    sa.Column("reference", sa.String(100), nullable=False, unique=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("amount", sa.Numeric(14, 2), nullable=False),
    sa.Column("currency", sa.String(3), nullable=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("failure_reason", sa.String(100), nullable=True),
    sa.Column("charge_reference", sa.String(100), nullable=True, comment="refunds: the charge"),
    sa.Column("created_at", UtcDateTime, nullable=False, server_default=sa.func.now()),
)
