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

# --- webhooks ----------------------------------------------------------------------------------

# Whose event is whose, learned from the event messages (for an organizer's webhooks).
event_organizers = sa.Table(
    "event_organizers",
    metadata,
    sa.Column("event_id", sa.Uuid, primary_key=True),
    sa.Column("organizer_id", sa.Uuid, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("owner_id", sa.Uuid, nullable=False),
    # an admin's endpoint receives its kinds for every event; an organizer's, for their own
    sa.Column("owner_is_admin", sa.Boolean, nullable=False),
    sa.Column("url", sa.String(2000), nullable=False),
    sa.Column("events", JSONDoc, nullable=False),
    sa.Column("event_id", sa.Uuid, nullable=True),
    # the signing secret, encrypted with WEBHOOK_ENCRYPTION_KEY (never stored in the clear)
    sa.Column("secret_encrypted", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index("ix_webhook_endpoints_owner_created", "owner_id", "created_at", "id"),
)

# Messages about an event whose organizer is not known yet (a booking message consumed before
# the event's own, which comes on another queue), written with their inbox mark while some
# organizer's endpoint subscribes to the kind. The webhook worker passes each on to the
# organizer's endpoints once the organizer is known, and drops it after WEBHOOK_RETRY_WINDOW.
webhook_waiting = sa.Table(
    "webhook_waiting",
    metadata,
    sa.Column("message_id", sa.Uuid, primary_key=True),
    sa.Column("event_id", sa.Uuid, nullable=False),
    sa.Column("kind", sa.String(50), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # the body its deliveries will carry
    sa.Column("created_at", UtcDateTime, nullable=False),  # when it was consumed
)

# One row per (endpoint, kind): what a message's fan-out looks up.
webhook_endpoint_kinds = sa.Table(
    "webhook_endpoint_kinds",
    metadata,
    sa.Column("kind", sa.String(50), primary_key=True),
    sa.Column("endpoint_id", sa.Uuid, primary_key=True),
)

# The webhooks' outbox: written with the message's inbox mark, sent by the webhook worker.
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),  # derived from (message id, endpoint id)
    sa.Column("endpoint_id", sa.Uuid, nullable=False),
    sa.Column("message_id", sa.Uuid, nullable=False),
    sa.Column("kind", sa.String(50), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # the exact body that is signed and sent
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("give_up_at", UtcDateTime, nullable=False),
    sa.Column("last_status_code", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("delivered_at", UtcDateTime, nullable=True),
    # Set while a worker has it in flight (leased, being sent): a retry by hand waits for the
    # attempt to be recorded, which clears it, instead of sending it a second time.
    sa.Column("leased_until", UtcDateTime, nullable=True),
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

# The delivery log: one row per attempt.
webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("delivery_id", sa.Uuid, nullable=False, index=True),
    sa.Column("attempted_at", UtcDateTime, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=True),  # the retry it scheduled, if any
)
