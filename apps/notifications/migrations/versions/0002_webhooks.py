"""Webhooks: organizers' endpoints, whose event is whose, and the deliveries with their log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

``webhook_deliveries`` is the webhooks' outbox: a consumed message writes one row per matching
endpoint with its inbox mark, and the webhook worker sends them (``FOR UPDATE SKIP LOCKED``).
``webhook_attempts`` is the delivery log. Secrets are stored encrypted.
"""

import sqlalchemy as sa
from alembic import op

from kit.tables import JSONDoc, UtcDateTime

revision = "0002"
down_revision = "0001"

# This migration's own frozen copy of its tables (tables.py follows later migrations).
metadata = sa.MetaData()
sa.Table(
    "event_organizers",
    metadata,
    sa.Column("event_id", sa.Uuid, primary_key=True),
    sa.Column("organizer_id", sa.Uuid, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("owner_id", sa.Uuid, nullable=False),
    sa.Column("owner_is_admin", sa.Boolean, nullable=False),
    sa.Column("url", sa.String(2000), nullable=False),
    sa.Column("events", JSONDoc, nullable=False),
    sa.Column("event_id", sa.Uuid, nullable=True),
    sa.Column("secret_encrypted", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index("ix_webhook_endpoints_owner_created", "owner_id", "created_at", "id"),
)
sa.Table(
    "webhook_endpoint_kinds",
    metadata,
    sa.Column("kind", sa.String(50), primary_key=True),
    sa.Column("endpoint_id", sa.Uuid, primary_key=True),
)
sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("endpoint_id", sa.Uuid, nullable=False),
    sa.Column("message_id", sa.Uuid, nullable=False),
    sa.Column("kind", sa.String(50), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("give_up_at", UtcDateTime, nullable=False),
    sa.Column("last_status_code", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("delivered_at", UtcDateTime, nullable=True),
    sa.CheckConstraint(
        "status IN ('pending', 'delivered', 'failed')", name="ck_webhook_deliveries_status"
    ),
    sa.Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at", "id"),
    sa.Index(
        "ix_webhook_deliveries_due",
        "next_attempt_at",
        postgresql_where=sa.text("status = 'pending'"),
    ),
)
sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("delivery_id", sa.Uuid, nullable=False, index=True),
    sa.Column("attempted_at", UtcDateTime, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=True),
)


def upgrade() -> None:
    metadata.create_all(op.get_bind())


def downgrade() -> None:
    metadata.drop_all(op.get_bind())
