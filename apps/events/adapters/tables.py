from __future__ import annotations

import sqlalchemy as sa

from kit.tables import UtcDateTime, service_metadata

metadata = service_metadata()

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("organizer_id", sa.Uuid, nullable=False, index=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("venue", sa.String(300), nullable=False),
    sa.Column("starts_at", UtcDateTime, nullable=False),
    sa.Column("ends_at", UtcDateTime, nullable=True),
    sa.Column("capacity", sa.Integer, nullable=False),
    sa.Column("price", sa.Numeric(14, 2), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("cancel_reason", sa.Text, nullable=False, server_default=""),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.CheckConstraint("capacity > 0", name="ck_events_capacity_positive"),
    sa.CheckConstraint("price >= 0", name="ck_events_price_non_negative"),
    sa.Index("ix_events_starts_at_id", "starts_at", "id"),
)
