-- seat_moves: seat-counter changes applied at COMMIT by a deferred trigger.
-- Why: docs/adr/0003-deferred-seat-moves.md. Installed by migrations with
-- kit.alembic_env.run_sql_file (the seat_moves table itself is created by migration 0003); a
-- change here comes with a new migration that runs it again (it is safe to re-run; 0004 did,
-- adding the type rows: inserted after the event rows, before the user rows, sorted by id; 0007
-- the voucher rows, last: `held` is then the change of the voucher's `used`).
CREATE OR REPLACE FUNCTION apply_seat_move() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF NEW.voucher_code IS NOT NULL THEN  -- uses of an event's voucher (migration 0007)
        UPDATE vouchers SET used = used + NEW.held, updated_at = now()
        WHERE event_id = NEW.event_id AND code = NEW.voucher_code;
    ELSIF NEW.ticket_type_id IS NOT NULL THEN  -- a ticket type's row (migration 0004)
        UPDATE type_inventory SET held = held + NEW.held, sold = sold + NEW.sold,
                                  updated_at = now()
        WHERE event_id = NEW.event_id AND ticket_type_id = NEW.ticket_type_id;
    ELSIF NEW.event_id IS NOT NULL THEN
        UPDATE inventory SET held = held + NEW.held, sold = sold + NEW.sold, updated_at = now()
        WHERE event_id = NEW.event_id;
    ELSE
        UPDATE user_holds SET held = held + NEW.held WHERE user_id = NEW.user_id;
    END IF;
    DELETE FROM seat_moves WHERE id = NEW.id;
    RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS seat_moves_apply_at_commit ON seat_moves;
CREATE CONSTRAINT TRIGGER seat_moves_apply_at_commit
AFTER INSERT ON seat_moves DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW EXECUTE FUNCTION apply_seat_move();
