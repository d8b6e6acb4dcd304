"""Webhooks: messages waiting for their event's organizer

Revision ID: 0003
Revises: 0002
Create Date: 2027-02-20

``webhook_waiting`` keeps a booking, payment or ticket message consumed before notifications
knew whose event it is (the event messages come on other queues), written with the message's
inbox mark; the webhook worker passes it on to the organizer's endpoints once the organizer is
known (``apps/notifications/webhooks.release_waiting``).
"""

import sqlalchemy as sa
from alembic import op

from kit.tables import UtcDateTime

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "webhook_waiting",
        sa.Column("message_id", sa.Uuid, primary_key=True),
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("webhook_waiting")
