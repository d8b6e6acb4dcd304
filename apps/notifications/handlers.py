"""Use cases of the notifications service.

Message handlers (run by ``consume_once``, so once per message id) only *store* notifications,
rendered and addressed: each message says what to tell whom (a :class:`Notice`); the handler
reads the user's contact and stores the notice's notifications with the message's inbox mark.
Each handler is written once, as the writes it makes (``kit.inbox``): one statement on
PostgreSQL, the same writes one by one in a unit of work on SQLite.
Sending is :func:`deliver_due`, run by the delivery worker, which records every outcome.
"""

from __future__ import annotations

import json

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from kit.db import Database
from kit.uow import UnitOfWork
from kit.inbox import OneStatementHandler, Statement
from kit.pagination import decode_position, page_of
from apps.notifications.adapters.channels import DeliveryError, Sender
from apps.notifications.adapters.repository import (
    ContactRepository,
    NotificationRepository,
    store_statement,
)
from apps.notifications.domain import Channel, Contact, NoAddress, Notification, RetryPolicy
from apps.notifications.webhooks import Fanout, fan_out
from apps.notifications.domain import QR_CODES
from apps.notifications.templates import (
    CANCELLATION_REASONS,
    REFUND_REASONS,
    greeting,
    money,
    render,
)
from contracts.envelope import Envelope
from contracts.messages import (
    BookingCancelled,
    BookingConfirmed,
    BookingExpired,
    EventCancelled,
    NotificationRequested,
    PaymentFailed,
    PaymentRefunded,
    UserRegistered,
    WaitlistOffered,
)

log = logging.getLogger(__name__)

DEFAULT_SUBJECT = "A message from Event Booking"

M = TypeVar("M")


def _now() -> datetime:
    return datetime.now(UTC)


def _text(channel: Channel, context: dict[str, str], contact: Contact | None) -> tuple[str, str]:
    """(subject, body) from the template named in ``context``, addressed to ``contact``."""
    values = {k: v for k, v in context.items() if k != "template"}
    return render(
        context["template"],
        channel,
        greeting=greeting(contact.full_name if contact else None),
        **values,
    )


def _context(template: str, values: dict[str, Any]) -> dict[str, str]:
    return {"template": template, **{k: "" if v is None else str(v) for k, v in values.items()}}


def _rendered(
    user_id: uuid.UUID,
    kind: str,
    channel: Channel,
    context: dict[str, str],
    contact: Contact | None,
    source: uuid.UUID,
    now: datetime,
    *,
    id: uuid.UUID | None = None,  # noqa: A002 - as Notification.create names it
) -> Notification:
    """A new ``kind`` notification to ``user_id`` on ``channel`` (one per ``source`` message,
    kind and channel), its text rendered from ``context`` and addressed to ``contact``."""
    subject, body = _text(channel, context, contact)
    return Notification.create(
        id=id,
        user_id=user_id,
        kind=kind,
        channel=channel,
        subject=subject,
        body=body,
        source_message_id=source,
        contact=contact,
        now=now,
        context=context,
    )


@dataclass(frozen=True)
class Notice:
    """What to tell a user about one message: a ``kind`` notification on each of their channels
    for that kind, its template filled with ``values``."""

    user_id: uuid.UUID
    kind: str
    source: uuid.UUID  # the message's id: one notification per (source, kind, channel)
    values: dict[str, Any]


def _render(notice: Notice, contact: Contact | None, now: datetime) -> list[Notification]:
    """The notice's notifications, rendered and addressed to ``contact``.

    An unknown user (their user_registered message has not arrived yet) gets an e-mail that
    waits as ``pending_contact``; it is rendered again, by name, when the contact arrives.
    """
    channels: list[Channel] = contact.channels_for(notice.kind) if contact else ["email"]
    context = _context(notice.kind, notice.values)
    return [
        _rendered(notice.user_id, notice.kind, channel, context, contact, notice.source, now)
        for channel in channels
    ]


def _notifying(notice_of: Callable[[M], Notice | None]) -> OneStatementHandler[M]:
    """The handler that stores ``notice_of(message)`` (nothing for None) and the message's
    webhook deliveries: it reads the user's contact and the matching endpoints, then stores
    the notifications and deliveries (or the message, while its event's organizer is unknown)
    with the inbox mark."""

    async def statement(msg: M, conn: AsyncConnection) -> Statement:
        hooks = await fan_out(msg, conn) if isinstance(msg, Envelope) else Fanout()
        notice = notice_of(msg)
        added: list[Notification] = []
        if notice is not None:
            contact = await ContactRepository(conn).get(notice.user_id)
            added = _render(notice, contact, _now())
        return store_statement(
            added,
            now=_now(),
            organizer=hooks.organizer,
            deliveries=hooks.deliveries,
            waiting=hooks.waiting,
        )

    return OneStatementHandler(statement)


def _booking_values(
    msg: BookingConfirmed | BookingCancelled | BookingExpired | WaitlistOffered,
) -> dict[str, Any]:
    return {
        "booking_id": msg.booking_id,
        "event_id": msg.event_id,
        "quantity": msg.quantity,
        "amount": money(msg.amount, msg.currency),
    }


# --- what each message tells whom -----------------------------------------------------------


def _contact_of(msg: UserRegistered) -> Contact:
    return Contact(user_id=msg.user_id, email=msg.email, full_name=msg.full_name, phone=msg.phone)


def _welcome(msg: UserRegistered) -> Notice:
    return Notice(msg.user_id, "welcome", msg.message_id, {"email": msg.email})


def _tickets_text(msg: BookingConfirmed) -> str:
    if not msg.tickets:
        return ""
    lines = [
        f"Ticket {n}: {t.attendee_name or 'unnamed'} ({t.ticket_id})"
        for n, t in enumerate(msg.tickets, 1)
    ]
    return (
        "Your tickets (show each QR code, attached, at the entrance):\n" + "\n".join(lines) + "\n"
    )


def booking_confirmed_notice(msg: BookingConfirmed) -> Notice:
    """The buyer's confirmation, with each ticket's QR code (attached to the e-mail)."""
    return Notice(
        msg.user_id,
        "booking_confirmed",
        msg.message_id,
        {
            "payment_id": msg.payment_id,
            **_booking_values(msg),
            "tickets_text": _tickets_text(msg),
            QR_CODES: json.dumps(
                [
                    {
                        "name": f"ticket-{n}-{t.ticket_id}.png",
                        "label": t.attendee_name or f"Ticket {n}",
                        "text": t.secret,
                    }
                    for n, t in enumerate(msg.tickets, 1)
                ]
            )
            if msg.tickets
            else None,
        },
    )


def booking_cancelled_notice(msg: BookingCancelled) -> Notice | None:
    # A booking cancelled because its payment failed is already explained by the
    # payment_failed notice (same flow, same moment): one message, not two.
    if msg.reason == "payment_failed":
        return None
    refund = (
        f"A refund of {money(msg.amount, msg.currency)} is on its way to the card you paid with."
        if msg.refund_due
        else ""
    )
    return Notice(
        msg.user_id,
        "booking_cancelled",
        msg.message_id,
        {
            "reason_text": CANCELLATION_REASONS.get(msg.reason, ""),
            "refund_text": refund,
            **_booking_values(msg),
        },
    )


def booking_expired_notice(msg: BookingExpired) -> Notice:
    return Notice(msg.user_id, "booking_expired", msg.message_id, _booking_values(msg))


def waitlist_offer_notice(msg: WaitlistOffered) -> Notice:
    return Notice(
        msg.user_id,
        "waitlist_offer",
        msg.message_id,
        {**_booking_values(msg), "expires_at": msg.expires_at.strftime("%Y-%m-%d %H:%M %Z")},
    )


def payment_failed_notice(msg: PaymentFailed) -> Notice:
    return Notice(
        msg.user_id,
        "payment_failed",
        msg.message_id,
        {
            "booking_id": msg.booking_id,
            "event_id": msg.event_id or "-",
            "payment_id": msg.payment_id,
            "amount": money(msg.amount, msg.currency),
            "failure_reason": msg.failure_reason.replace("_", " "),
        },
    )


def payment_refunded_notice(msg: PaymentRefunded) -> Notice:
    return Notice(
        msg.user_id,
        "payment_refunded",
        msg.message_id,
        {
            "booking_id": msg.booking_id,
            "payment_id": msg.payment_id,
            "amount": money(msg.amount, msg.currency),
            "provider_reference": msg.provider_reference,
            "reason_text": f"{REFUND_REASONS[msg.reason]} " if msg.reason in REFUND_REASONS else "",
        },
    )


def event_cancelled_notice(msg: EventCancelled) -> Notice:
    """Tell the organizer. Ticket holders are told through booking_cancelled, one per booking."""
    return Notice(
        msg.organizer_id,
        "event_cancelled",
        msg.message_id,
        {
            "event_id": msg.event_id,
            "title": msg.title,
            "venue": msg.venue,
            "starts_at": msg.starts_at.strftime("%Y-%m-%d %H:%M %Z"),
            "reason": msg.reason or "-",
        },
    )


def _custom(subject: str | None, body: str) -> dict[str, str]:
    """The context of a free-text notification (the ``custom`` template)."""
    return _context("custom", {"subject": subject or DEFAULT_SUBJECT, "body": body})


def _requested(msg: NotificationRequested, contact: Contact | None) -> Notification:
    context = _custom(msg.subject, msg.body)
    return _rendered(
        msg.user_id,
        msg.kind,
        msg.channel,
        context,
        contact,
        msg.message_id,
        _now(),
        id=msg.notification_id,
    )


# --- the message handlers -------------------------------------------------------------------


async def _register_contact_statement(msg: UserRegistered, _conn: AsyncConnection) -> Statement:
    contact, now = _contact_of(msg), _now()
    return store_statement(_render(_welcome(msg), contact, now), contact=contact, now=now)


async def _request_notification_statement(
    msg: NotificationRequested, conn: AsyncConnection
) -> Statement:
    contact = await ContactRepository(conn).get(msg.user_id)
    return store_statement([_requested(msg, contact)])


# Keep how to reach the new user, and welcome them.
register_contact = OneStatementHandler(_register_contact_statement)
notify_booking_confirmed = _notifying(booking_confirmed_notice)
notify_booking_cancelled = _notifying(booking_cancelled_notice)
notify_booking_expired = _notifying(booking_expired_notice)
notify_waitlist_offer = _notifying(waitlist_offer_notice)
notify_payment_failed = _notifying(payment_failed_notice)
notify_payment_refunded = _notifying(payment_refunded_notice)
notify_event_cancelled = _notifying(event_cancelled_notice)
# A message notifications only passes on to webhooks (and, for event messages, learns whose
# event it is from).
pass_to_webhooks: OneStatementHandler[Envelope] = _notifying(lambda _msg: None)
# The `notifications` command: store free text for one user on one channel, under the id the
# sender chose. A user without an address for that channel gets a `failed` row.
request_notification = OneStatementHandler(_request_notification_statement)


async def send_notification(
    uow: UnitOfWork, *, user_id: uuid.UUID, channel: Channel, subject: str, body: str
) -> Notification:
    """An admin's free-text notification. Refused if the user is known and cannot be reached
    on ``channel``; waits as `pending_contact` if the user is not known yet."""
    contact = await ContactRepository(uow.conn).get(user_id)
    if contact is not None and contact.address_for(channel) is None:
        raise NoAddress(f"The user has no address for the {channel} channel.")
    context = _custom(subject, body)
    notification_id = uuid.uuid4()
    notification = _rendered(
        user_id, "custom", channel, context, contact, notification_id, _now(), id=notification_id
    )
    await NotificationRepository(uow.conn).add(notification)
    return notification


# --- delivery -------------------------------------------------------------------------------


async def _attempt(sender: Sender, notification: Notification) -> DeliveryError | None:
    try:
        await sender.send(notification)
    except DeliveryError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - a provider bug must not stop the other sends
        return DeliveryError(f"{type(exc).__name__}: {exc}")
    return None


async def deliver_due(
    db: Database, senders: Mapping[Channel, Sender], policy: RetryPolicy, *, batch_size: int
) -> int:
    """Send one batch of due notifications and record each outcome. Returns the batch size.

    The rows stay locked (``FOR UPDATE SKIP LOCKED``) while they are sent and until their
    outcome commits, so two workers never send the same notification.
    """
    async with UnitOfWork(db) as uow:
        repo = NotificationRepository(uow.conn)
        due = await repo.claim_due(now=_now(), limit=batch_size)
        if not due:
            return 0
        errors = await asyncio.gather(*(_attempt(senders[n.channel], n) for n in due))
        now = _now()
        for notification, error in zip(due, errors, strict=True):
            if error is None:
                outcome = notification.delivered(now=now)
            else:
                outcome = notification.delivery_failed(
                    str(error)[:2000], permanent=error.permanent, policy=policy, now=now
                )
                log.warning(
                    "notification %s (%s, attempt %d) not delivered: %s -> %s",
                    notification.id,
                    notification.channel,
                    outcome.attempts,
                    error,
                    outcome.status,
                )
            await repo.save(outcome)
        await uow.commit()
    return len(due)


async def address_waiting(db: Database, *, contact_wait: timedelta, batch_size: int) -> int:
    """Release notifications whose user's contact has arrived; fail those that waited too long."""
    async with UnitOfWork(db) as uow:
        repo = NotificationRepository(uow.conn)
        now = _now()
        waiting = await repo.claim_waiting_for_contact(
            expire_before=now - contact_wait, limit=batch_size
        )
        for notification, contact in waiting:
            if contact is None:
                await repo.save(notification.contact_never_came(now=now))
                continue
            subject, body = _text(notification.channel, notification.context, contact)
            await repo.save(notification.addressed(contact, subject=subject, body=body, now=now))
            # A waiting domain notification is an e-mail; the channels that depend on the
            # contact (SMS when they gave a phone) join it now. Free-text ones stay as asked.
            is_domain_email = (
                notification.channel == "email"
                and notification.context.get("template") == notification.kind
            )
            if is_domain_email:
                for channel in contact.channels_for(notification.kind):
                    if channel == "email":
                        continue
                    await repo.add(
                        _rendered(
                            notification.user_id,
                            notification.kind,
                            channel,
                            notification.context,
                            contact,
                            notification.source_message_id,
                            now,
                        )
                    )
        await uow.commit()
    return len(waiting)


# --- reads ----------------------------------------------------------------------------------


async def list_notifications(
    db: Database, *, user_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[Notification], str | None]:
    before = decode_position(cursor)
    async with db.read() as conn:
        items = await NotificationRepository(conn).page_for_user(
            user_id, limit=limit + 1, before=before
        )
    items, next_cursor = page_of(items, limit, lambda x: (x.created_at, x.id))
    return items, next_cursor
