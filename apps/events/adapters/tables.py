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
    sa.Column("refund_self_service", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("refund_deadline_hours", sa.Integer, nullable=False, server_default="48"),
    sa.Column("refund_fee_percent", sa.Numeric(5, 2), nullable=False, server_default="0"),
    sa.CheckConstraint("capacity > 0", name="ck_events_capacity_positive"),
    sa.CheckConstraint("price >= 0", name="ck_events_price_non_negative"),
    sa.Index("ix_events_starts_at_id", "starts_at", "id"),
)

# An event's kinds of tickets; ``position`` keeps them in their order of creation.
ticket_types = sa.Table(
    "ticket_types",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("event_id", sa.Uuid, sa.ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("price", sa.Numeric(14, 2), nullable=False),
    sa.Column("capacity", sa.Integer, nullable=True),
    sa.Column("sales_start", UtcDateTime, nullable=True),
    sa.Column("sales_end", UtcDateTime, nullable=True),
    sa.Column("max_per_order", sa.Integer, nullable=True),
    sa.CheckConstraint("price >= 0", name="ck_ticket_types_price_non_negative"),
    sa.CheckConstraint("capacity IS NULL OR capacity > 0", name="ck_ticket_types_capacity"),
    sa.CheckConstraint("max_per_order IS NULL OR max_per_order > 0", name="ck_ticket_types_mpo"),
    sa.CheckConstraint(
        "sales_start IS NULL OR sales_end IS NULL OR sales_start < sales_end",
        name="ck_ticket_types_sales_window",
    ),
    sa.UniqueConstraint("event_id", "position", name="uq_ticket_types_event_position"),
)
# Names are unique within an event whatever their case (the domain says so first; this is the
# backstop if two additions ever raced past the event's row lock).
sa.Index(
    "uq_ticket_types_event_name",
    ticket_types.c.event_id,
    sa.func.lower(ticket_types.c.name),
    unique=True,
)

# An event's discount codes (migration 0003). ``used`` mirrors booking's count, learnt from its
# messages (eventually consistent); booking alone enforces ``max_uses``.
vouchers = sa.Table(
    "vouchers",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("event_id", sa.Uuid, sa.ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("percent_off", sa.Numeric(5, 2), nullable=True),
    sa.Column("amount_off", sa.Numeric(14, 2), nullable=True),
    sa.Column("max_uses", sa.Integer, nullable=False),
    sa.Column("valid_until", UtcDateTime, nullable=True),
    sa.Column("ticket_type_ids", sa.JSON, nullable=False),
    sa.Column("used", sa.Integer, nullable=False, server_default="0"),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.CheckConstraint(
        "(percent_off IS NULL) <> (amount_off IS NULL)", name="ck_vouchers_one_discount"
    ),
    sa.UniqueConstraint("event_id", "code", name="uq_vouchers_event_code"),
)
