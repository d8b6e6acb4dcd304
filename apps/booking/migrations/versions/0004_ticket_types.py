"""Ticket types: per-type inventory, booking lines, attendees

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

- ``type_inventory``: one row per (event, ticket type), built from the events service's
  snapshots: its own capacity (NULL: only the event's quota limits it), held and sold seats, price,
  sales window and per-order cap. The event's ``inventory`` row stays the quota every type draws
  from; each row has its own never-oversold CHECK.
- ``inventory.starts_at``: nothing is sold once the event has started.
- ``bookings.discount`` / ``bookings.voucher_code``; ``booking_lines`` (the seats per type at
  the price frozen when they were held) and ``booking_attendees`` (one per ticket, line order).
- ``seat_moves.ticket_type_id``: deferred seat moves of a type row (PostgreSQL only, see 0003).

Existing rows: every known event gets its one implicit type, "General admission" at the event's
price, id ``uuid5(NAMESPACE_URL, "<event_id>/general")`` (the rule for a snapshot without types),
carrying the event's held and sold seats; every booking gets one line of that type.
"""

import uuid
from pathlib import Path

import sqlalchemy as sa
from alembic import op

from kit.alembic_env import run_sql_file
from kit.tables import UtcDateTime

SQL = Path(__file__).resolve().parents[2] / "sql"

revision = "0004"
down_revision = "0003"

GENERAL = "General admission"


def general_type_id(event_id: uuid.UUID) -> uuid.UUID:
    """Frozen copy of the rule (apps/booking/domain.py has the live one)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{event_id}/general")


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    op.add_column("inventory", sa.Column("starts_at", UtcDateTime, nullable=True))
    op.add_column(
        "bookings",
        sa.Column("discount", sa.Numeric(14, 2), nullable=False, server_default="0"),
    )
    op.add_column("bookings", sa.Column("voucher_code", sa.String(64), nullable=True))
    type_inventory = op.create_table(
        "type_inventory",
        sa.Column("event_id", sa.Uuid, primary_key=True),
        sa.Column("ticket_type_id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("price", sa.Numeric(14, 2), nullable=False),
        sa.Column("capacity", sa.Integer, nullable=True),
        sa.Column("held", sa.Integer, nullable=False, server_default="0"),
        sa.Column("sold", sa.Integer, nullable=False, server_default="0"),
        sa.Column("sales_start", UtcDateTime, nullable=True),
        sa.Column("sales_end", UtcDateTime, nullable=True),
        sa.Column("max_per_order", sa.Integer, nullable=True),
        sa.Column("position", sa.Integer, nullable=False, server_default="0"),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("updated_at", UtcDateTime, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(
            "held >= 0 AND sold >= 0 AND (capacity IS NULL OR held + sold <= capacity)",
            name="ck_type_inventory_never_oversold",
        ),
    )
    op.create_table(
        "booking_lines",
        sa.Column("booking_id", sa.Uuid, primary_key=True),
        sa.Column("line_no", sa.Integer, primary_key=True),
        sa.Column("ticket_type_id", sa.Uuid, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("unit_price", sa.Numeric(14, 2), nullable=False),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        sa.CheckConstraint("quantity > 0", name="ck_booking_lines_quantity_positive"),
    )
    op.create_table(
        "booking_attendees",
        sa.Column("booking_id", sa.Uuid, primary_key=True),
        sa.Column("seat_no", sa.Integer, primary_key=True),
        sa.Column("ticket_type_id", sa.Uuid, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
    )

    # existing events: their implicit type carries the seats already out
    events = bind.execute(sa.text("SELECT event_id, price, held, sold FROM inventory")).all()
    if events:
        op.bulk_insert(
            type_inventory,
            [
                {
                    "event_id": e.event_id,
                    "ticket_type_id": general_type_id(e.event_id),
                    "name": GENERAL,
                    "price": e.price,
                    "capacity": None,
                    "held": e.held,
                    "sold": e.sold,
                    "position": 0,
                    "active": True,
                }
                for e in events
            ],
        )
    # existing bookings: one line of that type (amount = price x quantity, so the division is exact)
    op.execute(
        """
INSERT INTO booking_lines (booking_id, line_no, ticket_type_id, name, quantity, unit_price, amount)
SELECT b.id, 0, t.ticket_type_id, t.name, b.quantity, ROUND(b.amount / b.quantity, 2), b.amount
FROM bookings AS b JOIN type_inventory AS t ON t.event_id = b.event_id
"""
    )

    if postgres:
        op.add_column("seat_moves", sa.Column("ticket_type_id", sa.Uuid, nullable=True))
        # the old booking_reserve has another signature: drop it, the file creates the new one
        op.execute(
            "DROP FUNCTION IF EXISTS booking_reserve(uuid, uuid, uuid, integer, numeric, varchar, "
            "numeric, timestamptz, timestamptz, integer, uuid, varchar, varchar, jsonb, jsonb, "
            "boolean)"
        )
        run_sql_file(SQL / "booking_reserve.sql")
        run_sql_file(SQL / "seat_moves.sql")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION IF EXISTS booking_reserve(uuid, uuid, uuid, jsonb, varchar, "
            "numeric, varchar, jsonb, timestamptz, timestamptz, integer, uuid, varchar, "
            "varchar, jsonb, jsonb, boolean)"
        )
        op.drop_column("seat_moves", "ticket_type_id")
    op.drop_table("booking_attendees")
    op.drop_table("booking_lines")
    op.drop_table("type_inventory")
    with op.batch_alter_table("bookings") as batch:
        batch.drop_column("voucher_code")
        batch.drop_column("discount")
    with op.batch_alter_table("inventory") as batch:
        batch.drop_column("starts_at")
