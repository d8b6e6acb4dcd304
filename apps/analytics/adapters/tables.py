"""The analytics read model: one row per event, per booking and per payment.

Each transition has its own timestamp column (when its fact occurred), so a report is a few
GROUP BYs over these rows, exact for any window, and each timestamp column is indexed for the
``from``/``to`` filters.
"""

from __future__ import annotations

import sqlalchemy as sa

from kit.tables import UtcDateTime, service_metadata

metadata = service_metadata()

Money = sa.Numeric(14, 2)

events = sa.Table(
    "events",
    metadata,
    sa.Column("event_id", sa.Uuid, primary_key=True),
    sa.Column("organizer_id", sa.Uuid, nullable=False, index=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("venue", sa.String(300), nullable=False),
    sa.Column("starts_at", UtcDateTime, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("price", Money, nullable=False),
    sa.Column("capacity", sa.Integer, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False, comment="occurred_at of the snapshot"),
)

bookings = sa.Table(
    "bookings",
    metadata,
    sa.Column("booking_id", sa.Uuid, primary_key=True),
    sa.Column("event_id", sa.Uuid, nullable=False, index=True),
    sa.Column("user_id", sa.Uuid, nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("amount", Money, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(20), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=True, index=True),
    sa.Column("confirmed_at", UtcDateTime, nullable=True, index=True),
    sa.Column("cancelled_at", UtcDateTime, nullable=True, index=True),
    sa.Column("expired_at", UtcDateTime, nullable=True, index=True),
    sa.Column("cancel_reason", sa.String(40), nullable=True),
    # The seats per ticket type ([{ticket_type_id, name, quantity, unit_price, amount}]), as the
    # first booking fact that carried them told (they are frozen when the seats are held).
    sa.Column("lines", sa.JSON, nullable=True),
    # Taken off by a voucher, frozen at the hold like the lines (``amount`` is after it).
    sa.Column("discount", Money, nullable=False, server_default="0"),
)

payments = sa.Table(
    "payments",
    metadata,
    sa.Column("payment_id", sa.Uuid, primary_key=True),
    sa.Column("booking_id", sa.Uuid, nullable=False, index=True),
    sa.Column("user_id", sa.Uuid, nullable=False),
    sa.Column("event_id", sa.Uuid, nullable=True, index=True),
    sa.Column("amount", Money, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(20), nullable=True),
    sa.Column("succeeded_at", UtcDateTime, nullable=True, index=True),
    sa.Column("failed_at", UtcDateTime, nullable=True, index=True),
    sa.Column("refunded_at", UtcDateTime, nullable=True, index=True),
    sa.Column("refunded_amount", Money, nullable=True),
    sa.Column("failure_reason", sa.Text, nullable=True),
)

# One row per refund (a payment may be refunded in parts): ``refund_key`` is the refund's id, or
# for a refund without one ("the whole remaining amount, once") one derived from the payment.
refunds = sa.Table(
    "refunds",
    metadata,
    sa.Column("refund_key", sa.Uuid, primary_key=True),
    sa.Column("payment_id", sa.Uuid, nullable=False, index=True),
    sa.Column("booking_id", sa.Uuid, nullable=False),
    sa.Column("event_id", sa.Uuid, nullable=True, index=True),
    sa.Column("amount", Money, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("refunded_at", UtcDateTime, nullable=False, index=True),
)
