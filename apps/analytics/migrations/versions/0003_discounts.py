"""A booking's voucher discount (reports add them up per currency). 2026-12-02.

Existing bookings were made before vouchers: no discount.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.add_column(
        "bookings",
        sa.Column("discount", sa.Numeric(14, 2), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    with op.batch_alter_table("bookings") as batch:
        batch.drop_column("discount")
