"""Writing messages to the transactional outbox from Django, in the caller's transaction.

The same rows the kit's :func:`kit.outbox.write` writes (the kit's ``OutboxRelay`` then
publishes them): the contract message as JSON, the W3C trace context of the current request in
``headers`` (so the trace continues into the message), and a ``NOTIFY outbox`` that wakes the
relays when, and only when, the transaction commits.
"""

from __future__ import annotations

from django.db import connection, transaction
from opentelemetry import propagate

from kit.outbox import NOTIFY_CHANNEL
from auth.accounts.models import OutboxMessage
from contracts.envelope import Envelope

PRODUCER = "auth"


def outbox_write(*messages: Envelope) -> None:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("outbox_write must run inside the state change's transaction")
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    OutboxMessage.objects.bulk_create(
        OutboxMessage(
            id=m.message_id,
            routing_key=m.routing_key,
            message_type=m.message_type,  # type: ignore[attr-defined]
            payload=m.model_dump(mode="json"),
            headers=dict(carrier),
        )
        for m in (
            m if m.producer != "unknown" else m.model_copy(update={"producer": PRODUCER})
            for m in messages
        )
    )
    if connection.vendor == "postgresql":  # SQLite (embedded mode): the relay polls
        with connection.cursor() as cur:
            cur.execute(f"NOTIFY {NOTIFY_CHANNEL}")
