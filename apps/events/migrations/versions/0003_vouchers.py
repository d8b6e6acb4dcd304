"""Vouchers: an event's discount codes. 2026-12-02.

``used`` is the count booking reports in its messages (``voucher_use`` of booking_created,
booking_expired, booking_cancelled, booking_confirmed); booking enforces ``max_uses``.
"""

import sqlalchemy as sa
from alembic import op

from kit.tables import UtcDateTime

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "vouchers",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column(
            "event_id", sa.Uuid, sa.ForeignKey("events.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("percent_off", sa.Numeric(5, 2), nullable=True),
        sa.Column("amount_off", sa.Numeric(14, 2), nullable=True),
        sa.Column("max_uses", sa.Integer, nullable=False),
        sa.Column("valid_until", UtcDateTime, nullable=True),
        sa.Column("ticket_type_ids", sa.JSON, nullable=False),
        sa.Column("used", sa.Integer, nullable=False, server_default="0"),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.CheckConstraint(
            "(percent_off IS NULL) <> (amount_off IS NULL)", name="ck_vouchers_one_discount"
        ),
        sa.UniqueConstraint("event_id", "code", name="uq_vouchers_event_code"),
    )


def downgrade() -> None:
    op.drop_table("vouchers")
