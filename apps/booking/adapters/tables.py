from __future__ import annotations

import sqlalchemy as sa

from kit.tables import UtcDateTime, service_metadata

metadata = service_metadata()

# One row per event, built only from the events service's snapshots. The CHECK is the last line
# of defence: whatever a bug does, PostgreSQL refuses a state with more seats out than exist.
inventory = sa.Table(
    "inventory",
    metadata,
    sa.Column("event_id", sa.Uuid, primary_key=True),
    sa.Column("organizer_id", sa.Uuid, nullable=False),
    sa.Column("capacity", sa.Integer, nullable=False),
    sa.Column("held", sa.Integer, nullable=False, server_default="0"),
    sa.Column("sold", sa.Integer, nullable=False, server_default="0"),
    sa.Column("price", sa.Numeric(14, 2), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("version", sa.Integer, nullable=False, comment="last applied event snapshot"),
    sa.Column("updated_at", UtcDateTime, nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint(
        "held >= 0 AND sold >= 0 AND held + sold <= capacity", name="ck_inventory_never_oversold"
    ),
)

bookings = sa.Table(
    "bookings",
    metadata,
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

# Seats each user holds in pending bookings: one row to lock, so the per-user cap is exact
# under concurrent requests of one user.
user_holds = sa.Table(
    "user_holds",
    metadata,
    sa.Column("user_id", sa.Uuid, primary_key=True),
    sa.Column("held", sa.Integer, nullable=False),
    sa.CheckConstraint("held >= 0", name="ck_user_holds_non_negative"),
)
