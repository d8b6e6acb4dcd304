"""Refunds keep the organizer's reason

Revision ID: 0009
Revises: 0008
Create Date: 2027-02-15

- ``booking_refunds.note``: the free-text ``reason`` an organizer or admin gave with
  ``POST /booking/{id}/refund`` (NULL for a buyer's own cancellation and for the platform's
  refunds); ``reason`` stays the machine-readable kind (``organizer_refund``...).
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.add_column("booking_refunds", sa.Column("note", sa.String(500), nullable=True))


def downgrade() -> None:
    op.drop_column("booking_refunds", "note")
