"""booking_reserve(): a seat hold, its booking and its outbox row in one statement

The function itself is apps/booking/sql/booking_reserve.sql (ADR 0002).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

Why a function: on an on-sale rush every hold updates the same inventory row. Its row lock is
held from the UPDATE until COMMIT; with BEGIN, the statement(s), the outbox INSERT and COMMIT
sent one by one, the lock is held across several round trips *and* across the application's
event-loop turns between them, and the hot row serialises at a few dozen holds a second. One
call of this function in autocommit mode is one round trip: the lock is held only while
PostgreSQL runs it. (Inside a caller's transaction — an Idempotency-Key request — it behaves the
same, only the lock lasts until that transaction commits.)

The caller has already built the booking and its ``booking_created`` message (from the
inventory it read): the price is re-checked here, so a price change in between is reported
(``price_changed``) instead of booked at the old price. Refusals change nothing: the user-cap
check comes after the seats were taken (lock order: inventory row, then the user's row, as in
every other transaction), and is undone under the same lock if it fails.
"""
from pathlib import Path

from alembic import op

from kit.alembic_env import run_sql_file

SQL = Path(__file__).resolve().parents[2] / "sql"

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite (the embedded mode) reserves statement by statement, see repository_sqlite
    run_sql_file(SQL / "booking_reserve.sql")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "DROP FUNCTION IF EXISTS booking_reserve(uuid, uuid, uuid, integer, numeric, varchar, "
        "numeric, timestamptz, timestamptz, integer, uuid, varchar, varchar, jsonb, jsonb, boolean)"
    )
