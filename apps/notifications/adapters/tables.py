from __future__ import annotations

import sqlalchemy as sa

from kit.tables import JSONDoc, UtcDateTime, service_metadata

metadata = service_metadata()

contacts = sa.Table(
    "contacts",
    metadata,
    sa.Column("user_id", sa.Uuid, primary_key=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("full_name", sa.String(200), nullable=False, server_default=""),
    sa.Column("phone", sa.String(32), nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

notifications = sa.Table(
    "notifications",
    metadata,
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
    # A message handled twice (or by two replicas) never stores a second notification.
    sa.UniqueConstraint(
        "source_message_id", "kind", "channel", name="uq_notifications_source_kind_channel"
    ),
    sa.CheckConstraint(
        "status IN ('pending_contact', 'pending', 'sent', 'failed')", name="ck_notifications_status"
    ),
    sa.CheckConstraint("channel IN ('email', 'sms', 'push')", name="ck_notifications_channel"),
    sa.Index("ix_notifications_user_created", "user_id", "created_at", "id"),
    # The delivery worker's queue: only the rows it still has to look at.
    sa.Index(
        "ix_notifications_due",
        "next_attempt_at",
        postgresql_where=sa.text("status = 'pending'"),
    ),
    sa.Index(
        "ix_notifications_waiting_contact",
        "user_id",
        postgresql_where=sa.text("status = 'pending_contact'"),
    ),
)
