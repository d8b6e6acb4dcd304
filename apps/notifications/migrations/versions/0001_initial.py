"""contacts and notifications tables, and the kit tables (outbox, inbox, idempotency keys)

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

from kit.tables import JSONDoc, UtcDateTime, create_kit_tables, drop_kit_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_kit_tables(op)
    op.create_table(
        "contacts",
        sa.Column("user_id", sa.Uuid, primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("full_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("phone", sa.String(32), nullable=True),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("user_id", sa.Uuid, nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False, server_default=""),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=True),
        sa.Column("source_message_id", sa.Uuid, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("next_attempt_at", UtcDateTime, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("sent_at", UtcDateTime, nullable=True),
        # what the template was filled with, to render again once the user's contact is known
        sa.Column("context", JSONDoc, nullable=False, server_default="{}"),
        sa.UniqueConstraint(
            "source_message_id", "kind", "channel", name="uq_notifications_source_kind_channel"
        ),
        sa.CheckConstraint(
            "status IN ('pending_contact', 'pending', 'sent', 'failed')",
            name="ck_notifications_status",
        ),
        sa.CheckConstraint("channel IN ('email', 'sms', 'push')", name="ck_notifications_channel"),
    )
    op.create_index(
        "ix_notifications_user_created", "notifications", ["user_id", "created_at", "id"]
    )
    op.create_index(
        "ix_notifications_due", "notifications", ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_notifications_waiting_contact", "notifications", ["user_id"],
        postgresql_where=sa.text("status = 'pending_contact'"),
    )


def downgrade() -> None:
    op.drop_table("notifications")
    op.drop_table("contacts")
    drop_kit_tables(op)
