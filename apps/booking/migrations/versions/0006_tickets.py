"""Tickets: one per seat of a confirmed booking, and each event's signing key

Revision ID: 0006
Revises: 0005
Create Date: 2027-02-01

- ``event_keys``: each event's Ed25519 key pair that signs its tickets' secrets (the private
  key never leaves this database); ``kid`` names it in every secret's header.
- ``tickets``: issued in the transaction that confirms a booking (one per seat, in line
  order), voided in the one that cancels it; ``status`` valid → redeemed by one conditional
  UPDATE (the first scan), or → void. ``changed_at`` feeds the offline scanners' change list.

Existing confirmed bookings get no tickets (they were confirmed before tickets existed).
"""

import sqlalchemy as sa
from alembic import op

from kit.tables import UtcDateTime

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "event_keys",
        sa.Column("event_id", sa.Uuid, primary_key=True),
        sa.Column("kid", sa.String(64), nullable=False, unique=True),
        sa.Column("private_key", sa.LargeBinary, nullable=False),
        sa.Column("public_key", sa.LargeBinary, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "tickets",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("booking_id", sa.Uuid, nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("ticket_type_id", sa.Uuid, nullable=False),
        sa.Column("seat_no", sa.Integer, nullable=False),
        sa.Column("attendee_name", sa.String(200), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("issued_at", UtcDateTime, nullable=False),
        sa.Column("redeemed_at", UtcDateTime, nullable=True),
        sa.Column("changed_at", UtcDateTime, nullable=False),
        sa.CheckConstraint("status IN ('valid', 'redeemed', 'void')", name="ck_tickets_status"),
        sa.UniqueConstraint("booking_id", "seat_no", name="uq_tickets_booking_seat"),
    )
    op.create_index("ix_tickets_event_changed", "tickets", ["event_id", "changed_at"])


def downgrade() -> None:
    op.drop_index("ix_tickets_event_changed", "tickets")
    op.drop_table("tickets")
    op.drop_table("event_keys")
