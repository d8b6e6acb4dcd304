-- booking_reserve(): a seat hold, its booking and its outbox row in one statement.
-- Why: docs/adr/0002-reservation-in-one-statement.md. Installed by migrations with
-- kit.alembic_env.run_sql_file; a change here comes with a new migration that runs it again.
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
$fn$;
