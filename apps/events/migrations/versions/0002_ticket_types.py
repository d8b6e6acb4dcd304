"""Ticket types and the refund policy. 2026-12-04.

Every existing event gets one type, ``General admission``, at its price, whose id is derived
from the event's (``contracts.messages.implied_ticket_type_id``): the id booking already gives
the type implied by snapshots from before ticket types. Existing events get the default refund
policy (self-service, 48 hours before the start, no fee).
"""

import uuid

import sqlalchemy as sa
from alembic import op

from kit.tables import UtcDateTime

revision = "0002"
down_revision = "0001"


def implied_ticket_type_id(event_id: uuid.UUID) -> uuid.UUID:
    """Frozen copy of the rule (``contracts.messages.implied_ticket_type_id`` is the live one;
    booking's migration 0004 gives its rows the same ids)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{event_id}/general")


def upgrade() -> None:
    op.add_column(
        "events",
        sa.Column("refund_self_service", sa.Boolean, nullable=False, server_default=sa.true()),
    )
    op.add_column(
        "events",
        sa.Column("refund_deadline_hours", sa.Integer, nullable=False, server_default="48"),
    )
    op.add_column(
        "events",
        sa.Column("refund_fee_percent", sa.Numeric(5, 2), nullable=False, server_default="0"),
    )
    ticket_types = op.create_table(
        "ticket_types",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column(
            "event_id", sa.Uuid, sa.ForeignKey("events.id", ondelete="CASCADE"), nullable=False
        ),
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
        sa.CheckConstraint(
            "max_per_order IS NULL OR max_per_order > 0", name="ck_ticket_types_mpo"
        ),
        sa.CheckConstraint(
            "sales_start IS NULL OR sales_end IS NULL OR sales_start < sales_end",
            name="ck_ticket_types_sales_window",
        ),
        sa.UniqueConstraint("event_id", "position", name="uq_ticket_types_event_position"),
    )
    op.create_index(
        "uq_ticket_types_event_name",
        "ticket_types",
        ["event_id", sa.text("lower(name)")],
        unique=True,
    )
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, price FROM events")).all()
    if rows:
        # the raw SELECT gives a UUID on PostgreSQL, its hex string on SQLite
        ids = [(uuid.UUID(str(event_id)), price) for event_id, price in rows]
        op.bulk_insert(
            ticket_types,
            [
                {
                    "id": implied_ticket_type_id(event_id),
                    "event_id": event_id,
                    "position": 0,
                    "name": "General admission",
                    "description": "",
                    "price": price,
                }
                for event_id, price in ids
            ],
        )


def downgrade() -> None:
    op.drop_table("ticket_types")
    # one statement per column: SQLite drops columns one at a time too
    for column in ("refund_fee_percent", "refund_deadline_hours", "refund_self_service"):
        op.drop_column("events", column)
