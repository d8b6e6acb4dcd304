"""Inventory, bookings, user_holds and the kit tables (outbox, inbox, idempotency keys). 2026-11-27."""

import sqlalchemy as sa

from kit.alembic_env import InitialSchema
from kit.tables import UtcDateTime

revision = "0001"
down_revision = None

# This migration's own frozen copy of its tables (see InitialSchema).
schema = InitialSchema()
schema.table(
    "inventory",
    sa.Column("event_id", sa.Uuid, primary_key=True),
    sa.Column("organizer_id", sa.Uuid, nullable=False),
    sa.Column("capacity", sa.Integer, nullable=False),
    sa.Column("held", sa.Integer, nullable=False, server_default="0"),
    sa.Column("sold", sa.Integer, nullable=False, server_default="0"),
    sa.Column("price", sa.Numeric(14, 2), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint(
        "held >= 0 AND sold >= 0 AND held + sold <= capacity",
        name="ck_inventory_never_oversold",
    ),
)
schema.table(
    "bookings",
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("event_id", sa.Uuid, nullable=False),
    sa.Column("user_id", sa.Uuid, nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("amount", sa.Numeric(14, 2), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("payment_id", sa.Uuid, nullable=True),
    sa.Column("cancellation_reason", sa.String(40), nullable=True),
    sa.CheckConstraint("quantity > 0", name="ck_bookings_quantity_positive"),
    sa.CheckConstraint(
        "status IN ('pending', 'confirmed', 'cancelled', 'expired')", name="ck_bookings_status"
    ),
    sa.Index("ix_bookings_user_created", "user_id", "created_at", "id"),
    sa.Index("ix_bookings_created", "created_at", "id"),
    sa.Index("ix_bookings_event_id", "event_id"),
    sa.Index(
        "ix_bookings_pending_expiry", "expires_at", postgresql_where=sa.text("status = 'pending'")
    ),
)
schema.table(
    "user_holds",
    sa.Column("user_id", sa.Uuid, primary_key=True),
    sa.Column("held", sa.Integer, nullable=False),
    sa.CheckConstraint("held >= 0", name="ck_user_holds_non_negative"),
)

upgrade, downgrade = schema.upgrade, schema.downgrade
