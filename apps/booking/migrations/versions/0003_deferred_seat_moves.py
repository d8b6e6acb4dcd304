"""seat_moves: seat-counter changes applied at COMMIT by a deferred trigger

The trigger and its function are apps/booking/sql/seat_moves.sql (ADR 0003).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27

Why: a confirmation (held -> sold), an expiry or a cancellation changes the event's inventory
row, the row every hold of an on-sale rush also updates. Updated in the middle of the
transaction, its lock is held across the rest of it: the outbox and inbox writes, the COMMIT
round trip, and the application's event-loop turns between them, so confirmations and holds
queue behind each other. Instead the transaction inserts its changes here and a constraint
trigger deferred to COMMIT applies them: the inventory row is locked only while PostgreSQL
commits. Only changes that never take seats are deferred (a confirmation keeps held + sold, a
release lowers it); taking seats (a hold, a late payment re-taking them) stays an immediate,
conditional UPDATE. Rows are inserted event rows first (sorted), then user rows (sorted), and
deferred triggers fire in that order: the lock order every transaction keeps (inventory rows,
then user rows).
"""
from pathlib import Path

from alembic import op

from kit.alembic_env import run_sql_file

SQL = Path(__file__).resolve().parents[2] / "sql"

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite (the embedded mode) updates the counters in place: one writer anyway
    op.execute(
        """
CREATE TABLE seat_moves (
    id bigserial PRIMARY KEY,
    event_id uuid,
    user_id uuid,
    held integer NOT NULL DEFAULT 0,
    sold integer NOT NULL DEFAULT 0,
    CHECK ((event_id IS NULL) <> (user_id IS NULL))
)
"""
    )
    run_sql_file(SQL / "seat_moves.sql")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TABLE seat_moves; DROP FUNCTION apply_seat_move()")
