"""Waiting list: who waits for seats of a sold-out event, in order, and what they were offered

Revision ID: 0008
Revises: 0005
Create Date: 2027-02-01

- ``waitlist_entries``: one row per place in an event's waiting list. ``seq`` is the order (a
  sequence: never the clock, which replicas do not share); ``ticket_type_id`` NULL asks for any
  type. ``status``: ``waiting`` (in the queue), ``offered`` (``booking_id`` is the pending
  booking held for it; what became of the offer is that booking's status), ``left``. An entry is
  offered at most once, so nobody is offered seats again through an entry they bought with.
  ``hold_seconds`` is the hold time to pay, as configured when the entry joined.

The rules (who is served when seats come back) are in apps/booking/waitlist.py and
docs/architecture.md ("Waiting list").
"""

import sqlalchemy as sa
from alembic import op

from kit.tables import UtcDateTime

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.create_table(
        "waitlist_entries",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("id", sa.Uuid, nullable=False, unique=True),
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("user_id", sa.Uuid, nullable=False),
        sa.Column("ticket_type_id", sa.Uuid, nullable=True),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("booking_id", sa.Uuid, nullable=True, unique=True),
        sa.Column("hold_seconds", sa.Integer, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.CheckConstraint("quantity > 0", name="ck_waitlist_quantity_positive"),
        sa.CheckConstraint("status IN ('waiting', 'offered', 'left')", name="ck_waitlist_status"),
        sa.CheckConstraint(
            "(status = 'offered') = (booking_id IS NOT NULL)", name="ck_waitlist_offer_booking"
        ),
    )
    op.create_index("ix_waitlist_event_waiting", "waitlist_entries", ["event_id", "status", "seq"])
    op.create_index("ix_waitlist_user", "waitlist_entries", ["user_id", "seq"])


def downgrade() -> None:
    op.drop_table("waitlist_entries")
