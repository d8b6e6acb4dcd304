"""Webhooks: a delivery in flight says so

Revision ID: 0004
Revises: 0003
Create Date: 2027-02-20

``webhook_deliveries.leased_until``: set when the worker leases a delivery to send it, cleared
when the attempt is recorded. A retry by hand of a delivery in flight is refused (409
``delivery-in-flight``) instead of making it due again, which sent it twice.
"""

import sqlalchemy as sa
from alembic import op

from kit.tables import UtcDateTime

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.add_column("webhook_deliveries", sa.Column("leased_until", UtcDateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:  # SQLite rebuilds the table
        batch.drop_column("leased_until")
