"""Waiting-list offers are held to the per-user cap of held seats

Revision ID: 0010
Revises: 0009
Create Date: 2027-03-01

- ``waitlist_entries.max_held_per_user``: the most seats one user may hold at once
  (``MAX_SEATS_HELD_PER_USER``) as configured when the entry joined, like ``hold_seconds``: an
  offer is made only if its user's held seats stay within it (apps/booking/waitlist.py). Entries
  that joined before this revision get the setting's default, 20.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.add_column(
        "waitlist_entries",
        sa.Column("max_held_per_user", sa.Integer, nullable=False, server_default="20"),
    )


def downgrade() -> None:
    with op.batch_alter_table("waitlist_entries") as batch:
        batch.drop_column("max_held_per_user")
