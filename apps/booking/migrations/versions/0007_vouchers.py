"""Vouchers: an event's discount codes and their uses

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-02

- ``vouchers``: one row per (event, code) from the events service's voucher snapshots, with
  ``used``, the uses held by live (pending or paid) bookings. ``booking_reserve`` takes a use in
  the statement that holds the seats (only while ``used < max_uses`` and before
  ``valid_until``); an expiry or an unpaid cancellation gives it back.
- ``seat_moves.voucher_code``: a use given back is a deferred move too (PostgreSQL only),
  applied after the event, type and user rows: the lock order of the reservation.
- ``booking_reserve`` takes the voucher's version (the terms the discount was computed with).
"""

from pathlib import Path

import sqlalchemy as sa
from alembic import op

from kit.alembic_env import run_sql_file
from kit.tables import UtcDateTime

SQL = Path(__file__).resolve().parents[2] / "sql"

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "vouchers",
        sa.Column("event_id", sa.Uuid, primary_key=True),
        sa.Column("code", sa.String(64), primary_key=True),
        sa.Column("voucher_id", sa.Uuid, nullable=False),
        sa.Column("percent_off", sa.Numeric(5, 2), nullable=True),
        sa.Column("amount_off", sa.Numeric(14, 2), nullable=True),
        sa.Column("max_uses", sa.Integer, nullable=False),
        sa.Column("valid_until", UtcDateTime, nullable=True),
        sa.Column("ticket_type_ids", sa.JSON, nullable=False),
        sa.Column("used", sa.Integer, nullable=False, server_default="0"),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("used >= 0", name="ck_vouchers_used_non_negative"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.add_column("seat_moves", sa.Column("voucher_code", sa.String(64), nullable=True))
        run_sql_file(SQL / "booking_reserve.sql")
        run_sql_file(SQL / "seat_moves.sql")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION IF EXISTS booking_reserve(uuid, uuid, uuid, jsonb, varchar, "
            "numeric, varchar, integer, jsonb, timestamptz, timestamptz, integer, uuid, varchar, "
            "varchar, jsonb, jsonb, boolean)"
        )
        op.drop_column("seat_moves", "voucher_code")
    op.drop_table("vouchers")
