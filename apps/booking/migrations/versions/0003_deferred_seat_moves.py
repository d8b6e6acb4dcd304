"""seat_moves: seat-counter changes applied at COMMIT by a deferred trigger

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
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


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
);

CREATE FUNCTION apply_seat_move() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF NEW.event_id IS NOT NULL THEN
        UPDATE inventory SET held = held + NEW.held, sold = sold + NEW.sold, updated_at = now()
        WHERE event_id = NEW.event_id;
    ELSE
        UPDATE user_holds SET held = held + NEW.held WHERE user_id = NEW.user_id;
    END IF;
    DELETE FROM seat_moves WHERE id = NEW.id;
    RETURN NULL;
END
$fn$;

CREATE CONSTRAINT TRIGGER seat_moves_apply_at_commit
AFTER INSERT ON seat_moves DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW EXECUTE FUNCTION apply_seat_move();
"""
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TABLE seat_moves; DROP FUNCTION apply_seat_move()")
