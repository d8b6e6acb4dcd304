from __future__ import annotations

import sqlalchemy as sa

from kit.tables import UtcDateTime, service_metadata

metadata = service_metadata()

# One row per event, built only from the events service's snapshots. The CHECK is the last line
# of defence: whatever a bug does, PostgreSQL refuses a state with more seats out than exist.
inventory = sa.Table(
    "inventory",
    metadata,
    sa.Column("event_id", sa.Uuid, primary_key=True),
    sa.Column("organizer_id", sa.Uuid, nullable=False),
    sa.Column("capacity", sa.Integer, nullable=False),
    sa.Column("held", sa.Integer, nullable=False, server_default="0"),
    sa.Column("sold", sa.Integer, nullable=False, server_default="0"),
    sa.Column("price", sa.Numeric(14, 2), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("version", sa.Integer, nullable=False, comment="last applied event snapshot"),
    sa.Column("updated_at", UtcDateTime, nullable=False, server_default=sa.func.now()),
    sa.Column("starts_at", UtcDateTime, nullable=True, comment="nothing is sold from then on"),
    sa.CheckConstraint(
        "held >= 0 AND sold >= 0 AND held + sold <= capacity", name="ck_inventory_never_oversold"
    ),
)

# One row per (event, ticket type), from the same snapshots (migration 0004). Every type draws
# from its event's row above (the event's quota); ``capacity`` caps the type further (NULL: only
# the quota). A type missing from the latest snapshot is kept (bookings name it), not sold.
type_inventory = sa.Table(
    "type_inventory",
    metadata,
    sa.Column("event_id", sa.Uuid, primary_key=True),
    sa.Column("ticket_type_id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("price", sa.Numeric(14, 2), nullable=False),
    sa.Column("capacity", sa.Integer, nullable=True),
    sa.Column("held", sa.Integer, nullable=False, server_default="0"),
    sa.Column("sold", sa.Integer, nullable=False, server_default="0"),
    sa.Column("sales_start", UtcDateTime, nullable=True),
    sa.Column("sales_end", UtcDateTime, nullable=True),
    sa.Column("max_per_order", sa.Integer, nullable=True),
    sa.Column("position", sa.Integer, nullable=False, server_default="0"),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("updated_at", UtcDateTime, nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint(
        "held >= 0 AND sold >= 0 AND (capacity IS NULL OR held + sold <= capacity)",
        name="ck_type_inventory_never_oversold",
    ),
)

bookings = sa.Table(
    "bookings",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("event_id", sa.Uuid, nullable=False),
    sa.Column("user_id", sa.Uuid, nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("amount", sa.Numeric(14, 2), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("payment_id", sa.Uuid, nullable=True),
    sa.Column("cancellation_reason", sa.String(40), nullable=True),
    sa.Column("discount", sa.Numeric(14, 2), nullable=False, server_default="0"),
    sa.Column("voucher_code", sa.String(64), nullable=True),
    sa.CheckConstraint("quantity > 0", name="ck_bookings_quantity_positive"),
    sa.CheckConstraint(
        "status IN ('pending', 'confirmed', 'cancelled', 'expired')", name="ck_bookings_status"
    ),
    sa.Index("ix_bookings_user_created", "user_id", "created_at", "id"),
    sa.Index("ix_bookings_created", "created_at", "id"),
    sa.Index("ix_bookings_event_id", "event_id"),
    sa.Index(
        "ix_bookings_pending_expiry", "expires_at", postgresql_where=sa.text("status = 'pending'")
    ),
)

# The seats of a booking per ticket type, at the price frozen when they were held.
booking_lines = sa.Table(
    "booking_lines",
    metadata,
    sa.Column("booking_id", sa.Uuid, primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("ticket_type_id", sa.Uuid, nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("unit_price", sa.Numeric(14, 2), nullable=False),
    sa.Column("amount", sa.Numeric(14, 2), nullable=False),
    sa.CheckConstraint("quantity > 0", name="ck_booking_lines_quantity_positive"),
)

# One per ticket, in line order, when the buyer named them.
booking_attendees = sa.Table(
    "booking_attendees",
    metadata,
    sa.Column("booking_id", sa.Uuid, primary_key=True),
    sa.Column("seat_no", sa.Integer, primary_key=True),
    sa.Column("ticket_type_id", sa.Uuid, nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("email", sa.String(320), nullable=True),
)

# Seats each user holds in pending bookings: one row to lock, so the per-user cap is exact
# under concurrent requests of one user.
user_holds = sa.Table(
    "user_holds",
    metadata,
    sa.Column("user_id", sa.Uuid, primary_key=True),
    sa.Column("held", sa.Integer, nullable=False),
    sa.CheckConstraint("held >= 0", name="ck_user_holds_non_negative"),
)

# An event's vouchers, from the events service's snapshots (migration 0007). ``used`` is counted
# here, by the reservation's statement (taken) and by seat moves (given back): the one place
# where ``max_uses`` is enforced. A newer snapshot changes the terms, never ``used``.
vouchers = sa.Table(
    "vouchers",
    metadata,
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

# An event's waiting list (migration 0008): ``seq`` is the order; an entry is offered once, its
# ``booking_id`` is the pending booking held for it (see apps/booking/waitlist.py). Its hold time
# and its user's cap of held seats (0010) are the settings as they were when it joined.
waitlist_entries = sa.Table(
    "waitlist_entries",
    metadata,
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
    sa.Column("max_held_per_user", sa.Integer, nullable=False, server_default="20"),
    sa.CheckConstraint("quantity > 0", name="ck_waitlist_quantity_positive"),
    sa.CheckConstraint("status IN ('waiting', 'offered', 'left')", name="ck_waitlist_status"),
    sa.CheckConstraint(
        "(status = 'offered') = (booking_id IS NOT NULL)", name="ck_waitlist_offer_booking"
    ),
    sa.Index("ix_waitlist_event_waiting", "event_id", "status", "seq"),
    sa.Index("ix_waitlist_user", "user_id", "seq"),
)
