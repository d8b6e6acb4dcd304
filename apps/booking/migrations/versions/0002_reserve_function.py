"""booking_reserve(): a seat hold, its booking and its outbox row in one statement

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
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite (the embedded mode) reserves statement by statement, see repository_sqlite
    op.execute(
        """
CREATE OR REPLACE FUNCTION booking_reserve(
    p_id uuid, p_event_id uuid, p_user_id uuid, p_quantity integer,
    p_price numeric, p_currency varchar, p_amount numeric,
    p_now timestamptz, p_expires_at timestamptz, p_user_cap integer,
    p_message_id uuid, p_routing_key varchar, p_message_type varchar,
    p_payload jsonb, p_headers jsonb, p_notify boolean
) RETURNS TABLE (outcome text, event_status varchar, available integer)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_price numeric;
    v_currency varchar;
BEGIN
    UPDATE inventory SET held = held + p_quantity, updated_at = p_now
    WHERE event_id = p_event_id AND status = 'scheduled'
      AND capacity - held - sold >= p_quantity
      AND price = p_price AND currency = p_currency;
    IF NOT FOUND THEN
        SELECT i.status, i.capacity - i.held - i.sold, i.price, i.currency
        INTO event_status, available, v_price, v_currency
        FROM inventory AS i WHERE i.event_id = p_event_id;
        outcome := CASE
            WHEN NOT FOUND THEN 'event_unknown'
            WHEN event_status <> 'scheduled' THEN 'not_on_sale'
            WHEN available < p_quantity THEN 'sold_out'
            ELSE 'price_changed' END;
        RETURN NEXT;
        RETURN;
    END IF;

    INSERT INTO user_holds AS u (user_id, held)
    SELECT p_user_id, p_quantity WHERE p_quantity <= p_user_cap
    ON CONFLICT (user_id) DO UPDATE SET held = u.held + EXCLUDED.held
    WHERE u.held + EXCLUDED.held <= p_user_cap;
    IF NOT FOUND THEN
        -- still under the row lock taken above: nobody saw the seats go
        UPDATE inventory SET held = held - p_quantity WHERE event_id = p_event_id;
        outcome := 'hold_limit';
        event_status := 'scheduled';
        RETURN NEXT;
        RETURN;
    END IF;

    INSERT INTO bookings (id, event_id, user_id, quantity, status, amount, currency,
                          expires_at, created_at, updated_at)
    VALUES (p_id, p_event_id, p_user_id, p_quantity, 'pending', p_amount, p_currency,
            p_expires_at, p_now, p_now);
    INSERT INTO outbox (id, routing_key, message_type, payload, headers)
    VALUES (p_message_id, p_routing_key, p_message_type, p_payload, p_headers);
    IF p_notify THEN
        PERFORM pg_notify('outbox', '');
    END IF;
    outcome := 'reserved';
    event_status := 'scheduled';
    RETURN NEXT;
END
$fn$
"""
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "DROP FUNCTION IF EXISTS booking_reserve(uuid, uuid, uuid, integer, numeric, varchar, "
        "numeric, timestamptz, timestamptz, integer, uuid, varchar, varchar, jsonb, jsonb, boolean)"
    )
