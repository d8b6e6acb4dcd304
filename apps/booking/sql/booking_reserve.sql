-- booking_reserve(): an order's seat holds (every line or none), its booking, lines, attendees
-- and outbox row in one statement.
-- Why: docs/adr/0002-reservation-in-one-statement.md. Installed by migrations with
-- kit.alembic_env.run_sql_file; a change here comes with a new migration that runs it again
-- (migration 0004 drops the single-type version, whose arguments differ).
--
-- p_lines: [{ticket_type_id, name, quantity, unit_price, amount}] in the order of the request
-- (the booking's line order; one line per type). p_attendees: [{name, email, ticket_type_id}],
-- one per ticket in line order, or []. Lock order, as everywhere: the event's inventory row,
-- then its type rows sorted by id, then the user's row. A refusal undoes what it took under
-- the same locks (nobody saw the seats go) and says why; `ticket_type_id` names the line's type
-- that was refused (NULL: the event's quota, its status, or the user's cap). On `sold_out`,
-- `lapsed` says whether the event has holds past their time not yet expired (the caller expires
-- them and tries again: a lapsed hold, the buyer's own above all, must not look sold), found in
-- this same round trip.
-- A voucher (p_voucher_code, migration 0007) takes one use last, after the user's row (the lock
-- order, also of the deferred moves that give uses back): only while uses are left, before its
-- valid_until, and at p_voucher_version, the terms p_discount was computed with (else
-- 'voucher_changed': the caller reads it again). Refused, everything taken is undone.
-- Its answer's columns may change between versions, which CREATE OR REPLACE cannot do: drop first
-- (the version before vouchers, then this one).
DROP FUNCTION IF EXISTS booking_reserve(uuid, uuid, uuid, jsonb, varchar, numeric, varchar, jsonb,
    timestamptz, timestamptz, integer, uuid, varchar, varchar, jsonb, jsonb, boolean);
DROP FUNCTION IF EXISTS booking_reserve(uuid, uuid, uuid, jsonb, varchar, numeric, varchar,
    integer, jsonb, timestamptz, timestamptz, integer, uuid, varchar, varchar, jsonb, jsonb,
    boolean);
CREATE FUNCTION booking_reserve(
    p_id uuid, p_event_id uuid, p_user_id uuid, p_lines jsonb, p_currency varchar,
    p_discount numeric, p_voucher_code varchar, p_voucher_version integer, p_attendees jsonb,
    p_now timestamptz, p_expires_at timestamptz, p_user_cap integer,
    p_message_id uuid, p_routing_key varchar, p_message_type varchar,
    p_payload jsonb, p_headers jsonb, p_notify boolean
) RETURNS TABLE (outcome text, event_status varchar, available integer,
                 ticket_type_id uuid, type_available integer, lapsed boolean)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_total integer;
    v_amount numeric;
    v_currency varchar;
    v_starts_at timestamptz;
    v_line record;
    v_type record;
    v_taken uuid[] := '{}';
    v_voucher record;
BEGIN
    SELECT sum((l->>'quantity')::integer), sum((l->>'amount')::numeric)
    INTO v_total, v_amount FROM jsonb_array_elements(p_lines) AS l;

    -- 1. the event's quota
    UPDATE inventory AS i SET held = i.held + v_total, updated_at = p_now
    WHERE i.event_id = p_event_id AND i.status = 'scheduled'
      AND i.capacity - i.held - i.sold >= v_total
      AND i.currency = p_currency
      AND (i.starts_at IS NULL OR p_now < i.starts_at);
    IF NOT FOUND THEN
        SELECT i.status, i.capacity - i.held - i.sold, i.currency, i.starts_at
        INTO event_status, available, v_currency, v_starts_at
        FROM inventory AS i WHERE i.event_id = p_event_id;
        outcome := CASE
            WHEN NOT FOUND THEN 'event_unknown'
            WHEN event_status <> 'scheduled' THEN 'not_on_sale'
            WHEN v_starts_at IS NOT NULL AND p_now >= v_starts_at THEN 'sales_ended'
            WHEN available < v_total THEN 'sold_out'
            ELSE 'price_changed' END;
        IF outcome = 'sold_out' THEN
            lapsed := EXISTS (SELECT 1 FROM bookings AS b WHERE b.event_id = p_event_id
                              AND b.status = 'pending' AND b.expires_at <= p_now);
        END IF;
        RETURN NEXT;
        RETURN;
    END IF;
    event_status := 'scheduled';

    -- 2. each type's own limits, in id order (the lock order); the first refusal undoes all
    FOR v_line IN
        SELECT (l->>'ticket_type_id')::uuid AS type_id, (l->>'quantity')::integer AS qty,
               (l->>'unit_price')::numeric AS unit_price
        FROM jsonb_array_elements(p_lines) AS l
        ORDER BY 1
    LOOP
        UPDATE type_inventory AS t SET held = t.held + v_line.qty, updated_at = p_now
        WHERE t.event_id = p_event_id AND t.ticket_type_id = v_line.type_id AND t.active
          AND (t.capacity IS NULL OR t.capacity - t.held - t.sold >= v_line.qty)
          AND t.price = v_line.unit_price
          AND (t.sales_start IS NULL OR p_now >= t.sales_start)
          AND (t.sales_end IS NULL OR p_now < t.sales_end)
          AND (t.max_per_order IS NULL OR v_line.qty <= t.max_per_order);
        IF NOT FOUND THEN
            SELECT t.* INTO v_type FROM type_inventory AS t
            WHERE t.event_id = p_event_id AND t.ticket_type_id = v_line.type_id;
            outcome := CASE
                WHEN NOT FOUND OR NOT v_type.active THEN 'type_unknown'
                WHEN v_type.price <> v_line.unit_price THEN 'price_changed'
                WHEN v_type.sales_start IS NOT NULL AND p_now < v_type.sales_start
                    THEN 'sales_not_started'
                WHEN v_type.sales_end IS NOT NULL AND p_now >= v_type.sales_end THEN 'sales_ended'
                WHEN v_type.max_per_order IS NOT NULL AND v_line.qty > v_type.max_per_order
                    THEN 'too_many'
                ELSE 'sold_out' END;
            ticket_type_id := v_line.type_id;
            type_available := CASE WHEN v_type.capacity IS NULL THEN NULL
                                   ELSE v_type.capacity - v_type.held - v_type.sold END;
            -- undo, still under the locks taken above
            UPDATE type_inventory AS t SET held = t.held - (l->>'quantity')::integer
            FROM jsonb_array_elements(p_lines) AS l
            WHERE t.event_id = p_event_id AND t.ticket_type_id = (l->>'ticket_type_id')::uuid
              AND t.ticket_type_id = ANY (v_taken);
            UPDATE inventory AS i SET held = i.held - v_total WHERE i.event_id = p_event_id;
            SELECT i.capacity - i.held - i.sold INTO available
            FROM inventory AS i WHERE i.event_id = p_event_id;
            IF outcome = 'sold_out' THEN
                lapsed := EXISTS (SELECT 1 FROM bookings AS b WHERE b.event_id = p_event_id
                                  AND b.status = 'pending' AND b.expires_at <= p_now);
            END IF;
            RETURN NEXT;
            RETURN;
        END IF;
        v_taken := v_taken || v_line.type_id;
    END LOOP;

    -- 3. the user's cap
    INSERT INTO user_holds AS u (user_id, held)
    SELECT p_user_id, v_total WHERE v_total <= p_user_cap
    ON CONFLICT (user_id) DO UPDATE SET held = u.held + EXCLUDED.held
    WHERE u.held + EXCLUDED.held <= p_user_cap;
    IF NOT FOUND THEN
        UPDATE type_inventory AS t SET held = t.held - (l->>'quantity')::integer
        FROM jsonb_array_elements(p_lines) AS l
        WHERE t.event_id = p_event_id AND t.ticket_type_id = (l->>'ticket_type_id')::uuid;
        UPDATE inventory AS i SET held = i.held - v_total WHERE i.event_id = p_event_id;
        outcome := 'hold_limit';
        RETURN NEXT;
        RETURN;
    END IF;

    -- 4. the voucher's uses
    IF p_voucher_code IS NOT NULL THEN
        UPDATE vouchers AS v SET used = v.used + 1, updated_at = p_now
        WHERE v.event_id = p_event_id AND v.code = p_voucher_code
          AND v.version = p_voucher_version AND v.used < v.max_uses
          AND (v.valid_until IS NULL OR p_now < v.valid_until);
        IF NOT FOUND THEN
            SELECT v.* INTO v_voucher FROM vouchers AS v
            WHERE v.event_id = p_event_id AND v.code = p_voucher_code;
            outcome := CASE
                WHEN NOT FOUND THEN 'voucher_unknown'
                WHEN v_voucher.version <> p_voucher_version THEN 'voucher_changed'
                ELSE 'voucher_exhausted' END;
            UPDATE user_holds AS u SET held = u.held - v_total WHERE u.user_id = p_user_id;
            UPDATE type_inventory AS t SET held = t.held - (l->>'quantity')::integer
            FROM jsonb_array_elements(p_lines) AS l
            WHERE t.event_id = p_event_id AND t.ticket_type_id = (l->>'ticket_type_id')::uuid;
            UPDATE inventory AS i SET held = i.held - v_total WHERE i.event_id = p_event_id;
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;

    INSERT INTO bookings (id, event_id, user_id, quantity, status, amount, currency,
                          expires_at, created_at, updated_at, discount, voucher_code)
    VALUES (p_id, p_event_id, p_user_id, v_total, 'pending', v_amount - p_discount, p_currency,
            p_expires_at, p_now, p_now, p_discount, p_voucher_code);
    INSERT INTO booking_lines (booking_id, line_no, ticket_type_id, name, quantity, unit_price,
                               amount)
    SELECT p_id, (n - 1)::integer, (l->>'ticket_type_id')::uuid, l->>'name',
           (l->>'quantity')::integer, (l->>'unit_price')::numeric, (l->>'amount')::numeric
    FROM jsonb_array_elements(p_lines) WITH ORDINALITY AS x(l, n);
    INSERT INTO booking_attendees (booking_id, seat_no, ticket_type_id, name, email)
    SELECT p_id, (n - 1)::integer, (a->>'ticket_type_id')::uuid, a->>'name', a->>'email'
    FROM jsonb_array_elements(p_attendees) WITH ORDINALITY AS x(a, n);
    INSERT INTO outbox (id, routing_key, message_type, payload, headers)
    VALUES (p_message_id, p_routing_key, p_message_type, p_payload, p_headers);
    IF p_notify THEN
        PERFORM pg_notify('outbox', '');
    END IF;
    outcome := 'reserved';
    RETURN NEXT;
END
$fn$;
