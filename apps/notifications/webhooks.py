"""Webhook use cases: organizers' endpoints, the fan-out of a consumed message into deliveries,
and the delivery rounds of the webhook worker.

A message of a webhook kind (``contracts.topology.WEBHOOK_MESSAGES``) is turned into one
delivery row per matching endpoint by :func:`fan_out`, and those rows are written with the
message's inbox mark (``handlers``): the deliveries table is the webhooks' outbox, so a message
is never lost between the queue and the endpoint. The worker sends due rows (:func:`send_due`),
records every attempt and schedules retries (``domain.WebhookBackoff``).
"""

from __future__ import annotations

import json
import logging
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import InvalidToken
from sqlalchemy.ext.asyncio import AsyncConnection

from apps.notifications.adapters.webhooks import (
    SecretBox,
    SendOutcome,
    WebhookRepository,
    WebhookSender,
    WebhookTargets,
)
from apps.notifications.domain import (
    WEBHOOK_RETRY_WINDOW,
    DeliveryInFlight,
    DeliveryNotFound,
    EventNotFound,
    WebhookBackoff,
    WebhookLimitReached,
    WebhookNotFound,
    delivery_id,
    webhook_secret,
)
from contracts.envelope import Envelope
from contracts.topology import WEBHOOK_MESSAGES
from kit.bindings import OptionalBindings
from kit.db import Database
from kit.pagination import decode_position, page_of
from kit.security import Principal
from kit.uow import UnitOfWork

log = logging.getLogger(__name__)

# The kinds an endpoint may subscribe to: one per webhook message, its routing key.
WEBHOOK_KINDS: tuple[str, ...] = tuple(m.routing_key for m in WEBHOOK_MESSAGES)

# The envelope's bookkeeping stays out of `data`; the kind is `type`, the time `timestamp`.
_ENVELOPE_FIELDS = frozenset(Envelope.model_fields) | {"message_type"}


def _now() -> datetime:
    return datetime.now(UTC)


def webhook_body(msg: Envelope) -> str:
    """The body of every delivery of ``msg``: ``{type, timestamp, data}``, compact JSON."""
    data = msg.model_dump(mode="json", exclude=set(_ENVELOPE_FIELDS))
    # A ticket's secret is what lets its holder in: it goes to the buyer's e-mail, never to a
    # third party's server (the organizer reads it from the tickets route if it must).
    for ticket in data.get("tickets") or ():
        ticket.pop("secret", None)
    body = {"type": msg.routing_key, "timestamp": msg.occurred_at.isoformat(), "data": data}
    return json.dumps(body, separators=(",", ":"))


# --- the fan-out of a consumed message -----------------------------------------------------------


@dataclass(frozen=True)
class Fanout:
    """What a message adds for webhooks: whose event it is (learned from event messages), one
    delivery row per matching endpoint, and the message itself while its event's organizer is
    not known yet (a row of ``webhook_waiting``, see :func:`release_waiting`)."""

    organizer: tuple[uuid.UUID, uuid.UUID] | None = None
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    waiting: dict[str, Any] | None = None


def _delivery(
    message_id: uuid.UUID, endpoint: uuid.UUID, kind: str, payload: str, now: datetime
) -> dict[str, Any]:
    """A new delivery row: due now, retried for WEBHOOK_RETRY_WINDOW."""
    return {
        "id": delivery_id(message_id, endpoint),
        "endpoint_id": endpoint,
        "message_id": message_id,
        "kind": kind,
        "payload": payload,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "give_up_at": now + WEBHOOK_RETRY_WINDOW,
        "last_status_code": None,
        "last_error": None,
        "created_at": now,
        "updated_at": now,
        "delivered_at": None,
        "leased_until": None,
    }


async def fan_out(msg: Envelope, conn: AsyncConnection) -> Fanout:
    """Read which endpoints ``msg`` goes to (reads only: the writes go with the inbox mark).

    A message that names its event but not the organizer (bookings, payments, tickets) goes
    to the organizer ``event_organizers`` knows. Not known yet, it matches the admins'
    endpoints only, and the message itself is kept, if some organizer's endpoint subscribes to
    its kind, for :func:`release_waiting`: the event's own message comes on another queue and
    may be consumed later."""
    if not isinstance(msg, WEBHOOK_MESSAGES):
        return Fanout()
    kind = msg.routing_key
    event_id: uuid.UUID | None = getattr(msg, "event_id", None)
    organizer_id: uuid.UUID | None = getattr(msg, "organizer_id", None)
    repo = WebhookRepository(conn)
    learned = (event_id, organizer_id) if event_id and organizer_id else None
    waits = False
    if organizer_id is None and event_id is not None:
        # Whatever is learned after this read, a message kept here is released by the
        # worker's next round (the event's own handler could not: its one statement does not
        # see a row written by another statement meanwhile).
        organizer_id, listening = await repo.organizer_or_listening(kind, event_id)
        waits = organizer_id is None and listening
    endpoints = await repo.matching(kind, event_id, organizer_id)
    if not endpoints and not waits:
        return Fanout(learned)
    now, payload = _now(), webhook_body(msg)
    deliveries = [_delivery(msg.message_id, e, kind, payload, now) for e in endpoints]
    waiting = None
    if waits:
        waiting = {
            "message_id": msg.message_id,
            "event_id": event_id,
            "kind": kind,
            "payload": payload,
            "created_at": now,
        }
    return Fanout(learned, deliveries, waiting)


async def release_waiting(db: Database, *, limit: int) -> int:
    """Pass on the messages that waited for their event's organizer (:func:`fan_out`) now that
    it is known: one delivery per endpoint of the organizer's that matches and was registered
    by the time the message was consumed (the admins' got theirs then), written in the
    transaction that removes the message. Messages whose event stayed unknown for
    WEBHOOK_RETRY_WINDOW are dropped. Run by the webhook worker each round: whichever of the
    message and its event was consumed first, and however the two overlapped, the message is
    passed on once (its deliveries' ids are derived from it). Returns how many were handled."""
    async with UnitOfWork(db) as uow:
        now = _now()
        repo = WebhookRepository(uow.conn)
        released, expired = await repo.take_waiting(
            expire_before=now - WEBHOOK_RETRY_WINDOW, limit=limit
        )
        if not released and not expired:
            return 0
        targets = await repo.organizer_endpoints_of([w.message_id for w in released])
        await repo.add_deliveries(
            [
                _delivery(w.message_id, endpoint, w.kind, w.payload, now)
                for w in released
                for endpoint in targets.get(w.message_id, ())
            ]
        )
        await repo.forget_waiting([w.message_id for w in released + expired])
        await uow.commit()
    if expired:
        log.warning(
            "%d webhook message(s) dropped: their event's organizer never became known "
            "(event ids %s)",
            len(expired),
            ", ".join(sorted({str(w.event_id) for w in expired})),
        )
    return len(released) + len(expired)


# --- endpoints -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisteredWebhook:
    row: sa.Row
    secret: str  # shown once, in the registration's answer


async def register_webhook(
    uow: UnitOfWork,
    *,
    owner: Principal,
    url: str,
    kinds: Sequence[str],
    event_id: uuid.UUID | None,
    targets: WebhookTargets,
    box: SecretBox,
    bindings: OptionalBindings,
    max_per_owner: int,
) -> RegisteredWebhook:
    """Register an endpoint for ``kinds`` (of ``event_id``, or of all the owner's events).
    The URL must be a public http(s) target; an organizer may only name their own event; an
    owner has at most ``max_per_owner`` endpoints (counted under a lock on the owner, so
    registrations that race cannot pass it together). Its webhook-only kinds are routed to
    the service before it is written (``bindings``)."""
    await targets.check(url)
    repo = WebhookRepository(uow.conn)
    await repo.lock_owner(owner.user_id)
    if await repo.count_endpoints(owner.user_id) >= max_per_owner:
        raise WebhookLimitReached(
            f"You already have {max_per_owner} webhook endpoints, as many as one owner may. "
            "Delete one first, or subscribe an existing one to more kinds.",
            limit=max_per_owner,
        )
    if event_id is not None and not owner.is_admin:
        organizer = await repo.organizer_of(event_id)
        # Unknown yet (its event_created may still be on its way): only its organizer's
        # messages are ever delivered to this endpoint anyway.
        if organizer is not None and organizer != owner.user_id:
            raise EventNotFound("No such event.")
    secret = webhook_secret()
    values = {
        "id": uuid.uuid4(),
        "owner_id": owner.user_id,
        "owner_is_admin": owner.is_admin,
        "url": url,
        "events": list(dict.fromkeys(kinds)),
        "event_id": event_id,
        "secret_encrypted": box.seal(secret),
        "created_at": _now(),
    }
    await bindings.hold(uow.conn, values["events"])
    await repo.add_endpoint(values, values["events"])
    row = await repo.endpoint(values["id"], owner.user_id)
    assert row is not None
    return RegisteredWebhook(row, secret)


async def delete_webhook(uow: UnitOfWork, *, owner: Principal, endpoint_id: uuid.UUID) -> None:
    """Delete the caller's endpoint with its deliveries (pending ones are not sent)."""
    repo = WebhookRepository(uow.conn)
    if await repo.endpoint(endpoint_id, owner.user_id) is None:
        raise WebhookNotFound("No such webhook.")
    await repo.delete_endpoint(endpoint_id)


async def list_webhooks(
    db: Database, *, owner: Principal, limit: int, cursor: str | None
) -> tuple[list[sa.Row], str | None]:
    async with db.read() as conn:
        rows = await WebhookRepository(conn).endpoints_of(
            owner.user_id, limit=limit + 1, before=decode_position(cursor)
        )
    return page_of(rows, limit, lambda r: (r.created_at, r.id))


async def list_deliveries(
    db: Database, *, owner: Principal, endpoint_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[tuple[sa.Row, list[sa.Row]]], str | None]:
    """The endpoint's deliveries, newest first, each with its attempts (oldest first)."""
    async with db.read() as conn:
        repo = WebhookRepository(conn)
        if await repo.endpoint(endpoint_id, owner.user_id) is None:
            raise WebhookNotFound("No such webhook.")
        rows = await repo.deliveries_of(
            endpoint_id, limit=limit + 1, before=decode_position(cursor)
        )
        rows, next_cursor = page_of(rows, limit, lambda r: (r.created_at, r.id))
        attempts = await repo.attempts_of([r.id for r in rows])
    return [(r, attempts[r.id]) for r in rows], next_cursor


async def retry_delivery(
    uow: UnitOfWork, *, owner: Principal, endpoint_id: uuid.UUID, delivery: uuid.UUID
) -> tuple[sa.Row, list[sa.Row]]:
    """Send a delivery again now (a failed one gets one more attempt, a delivered one is sent
    once more). Refused while a worker is sending it: it would go out twice at once."""
    repo = WebhookRepository(uow.conn)
    if await repo.endpoint(endpoint_id, owner.user_id) is None:
        raise WebhookNotFound("No such webhook.")
    if await repo.delivery(delivery, endpoint_id) is None:
        raise DeliveryNotFound("No such delivery.")
    if not await repo.make_due(delivery, now=_now()):
        raise DeliveryInFlight(
            "This delivery is being sent right now; retry it once the attempt shows in its log."
        )
    row = await repo.delivery(delivery, endpoint_id)
    assert row is not None
    return row, (await repo.attempts_of([delivery]))[delivery]


# --- delivery ------------------------------------------------------------------------------------


async def claim_deliveries(
    db: Database,
    *,
    limit: int,
    per_endpoint: int,
    in_flight: Mapping[uuid.UUID, int],
    lease_seconds: float,
) -> list[sa.Row]:
    """Lease due deliveries for sending (see ``WebhookRepository.claim_due``)."""
    async with UnitOfWork(db) as uow:
        now = _now()
        rows = await WebhookRepository(uow.conn).claim_due(
            now=now,
            lease_until=now + timedelta(seconds=lease_seconds),
            limit=limit,
            per_endpoint=per_endpoint,
            in_flight=in_flight,
        )
        await uow.commit()
    return rows


async def send_delivery(
    db: Database, sender: WebhookSender, box: SecretBox, backoff: WebhookBackoff, row: sa.Row
) -> SendOutcome:
    """Send one leased delivery and record the attempt: delivered, retried later, or failed."""
    try:
        secret = box.open(row.secret_encrypted)
    except InvalidToken:  # WEBHOOK_ENCRYPTION_KEY changed: retried, in case it comes back
        outcome = SendOutcome(None, "the secret cannot be decrypted with this key", 0)
    else:
        outcome = await sender.send(
            url=row.url, secret=secret, delivery_id=row.id, payload=row.payload
        )
    now = _now()
    retry_at = None
    if not outcome.ok:
        retry_at = backoff.next_attempt(
            row.attempts + 1, now=now, give_up_at=row.give_up_at, jitter=random.uniform(-1, 1)
        )
        log.info(
            "webhook %s to endpoint %s: attempt %d failed (%s %s), %s",
            row.id,
            row.endpoint_id,
            row.attempts + 1,
            outcome.status_code,
            outcome.error,
            f"retry at {retry_at.isoformat()}" if retry_at else "giving up",
        )
    async with UnitOfWork(db) as uow:
        await WebhookRepository(uow.conn).record(row, outcome, now=now, next_attempt_at=retry_at)
        await uow.commit()
    return outcome
