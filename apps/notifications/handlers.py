"""Use cases of the notifications service.

Message handlers are ``handle(message, uow)`` (run by ``consume_once``, so once per message id):
they only *store* notifications, rendered and addressed, in the message's unit of work.
Sending is :func:`deliver_due`, run by the delivery worker, which records every outcome.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from apps.kit.db import Database, UnitOfWork
from apps.kit.pagination import decode_position, page_of
from apps.notifications.adapters.channels import DeliveryError, Sender
from apps.notifications.adapters.repository import ContactRepository, NotificationRepository
from apps.notifications.domain import Channel, Contact, NoAddress, Notification, RetryPolicy
from apps.notifications.templates import CANCELLATION_REASONS, greeting, money, render
from contracts.messages import (
    BookingCancelled,
    BookingConfirmed,
    BookingExpired,
    EventCancelled,
    NotificationRequested,
    PaymentFailed,
    PaymentRefunded,
    UserRegistered,
)

log = logging.getLogger(__name__)

DEFAULT_SUBJECT = "A message from Event Booking"


def _now() -> datetime:
    return datetime.now(UTC)


def _text(channel: Channel, context: dict[str, str], contact: Contact | None) -> tuple[str, str]:
    """(subject, body) from the template named in ``context``, addressed to ``contact``."""
    values = {k: v for k, v in context.items() if k != "template"}
    return render(
        context["template"], channel, greeting=greeting(contact.full_name if contact else None),
        **values,
    )


def _context(template: str, values: dict[str, Any]) -> dict[str, str]:
    return {"template": template, **{k: "" if v is None else str(v) for k, v in values.items()}}


async def _notify(
    uow: UnitOfWork, *, user_id: uuid.UUID, kind: str, source: uuid.UUID, **values: Any
) -> list[Notification]:
    """Store a ``kind`` notification for the user on each of their channels for that kind.

    An unknown user (their user_registered message has not arrived yet) gets an e-mail that
    waits as ``pending_contact``; it is rendered again, by name, when the contact arrives.
    """
    contact = await ContactRepository(uow.conn).get(user_id)
    channels: list[Channel] = contact.channels_for(kind) if contact else ["email"]
    context = _context(kind, values)
    stored = []
    for channel in channels:
        subject, body = _text(channel, context, contact)
        notification = Notification.create(
            user_id=user_id, kind=kind, channel=channel, subject=subject, body=body,
            source_message_id=source, contact=contact, now=_now(), context=context,
        )
        if await NotificationRepository(uow.conn).add(notification):
            stored.append(notification)
    return stored


def _booking_values(msg: BookingConfirmed | BookingCancelled | BookingExpired) -> dict[str, Any]:
    return {
        "booking_id": msg.booking_id, "event_id": msg.event_id, "quantity": msg.quantity,
        "amount": money(msg.amount, msg.currency),
    }


async def register_contact(msg: UserRegistered, uow: UnitOfWork) -> None:
    """Keep how to reach the new user, and welcome them."""
    contact = Contact(user_id=msg.user_id, email=msg.email, full_name=msg.full_name, phone=msg.phone)
    await ContactRepository(uow.conn).put(contact, now=_now())
    await _notify(uow, user_id=msg.user_id, kind="welcome", source=msg.message_id, email=msg.email)


async def notify_booking_confirmed(msg: BookingConfirmed, uow: UnitOfWork) -> None:
    await _notify(
        uow, user_id=msg.user_id, kind="booking_confirmed", source=msg.message_id,
        payment_id=msg.payment_id, **_booking_values(msg),
    )


async def notify_booking_cancelled(msg: BookingCancelled, uow: UnitOfWork) -> None:
    # A booking cancelled because its payment failed is already explained by the
    # payment_failed notice (same flow, same moment): one message, not two.
    if msg.reason == "payment_failed":
        return
    refund = (
        f"A refund of {money(msg.amount, msg.currency)} is on its way to the card you paid with."
        if msg.refund_due
        else ""
    )
    await _notify(
        uow, user_id=msg.user_id, kind="booking_cancelled", source=msg.message_id,
        reason_text=CANCELLATION_REASONS.get(msg.reason, ""), refund_text=refund,
        **_booking_values(msg),
    )


async def notify_booking_expired(msg: BookingExpired, uow: UnitOfWork) -> None:
    await _notify(
        uow, user_id=msg.user_id, kind="booking_expired", source=msg.message_id,
        **_booking_values(msg),
    )


async def notify_payment_failed(msg: PaymentFailed, uow: UnitOfWork) -> None:
    await _notify(
        uow, user_id=msg.user_id, kind="payment_failed", source=msg.message_id,
        booking_id=msg.booking_id, event_id=msg.event_id or "-", payment_id=msg.payment_id,
        amount=money(msg.amount, msg.currency), failure_reason=msg.failure_reason.replace("_", " "),
    )


async def notify_payment_refunded(msg: PaymentRefunded, uow: UnitOfWork) -> None:
    await _notify(
        uow, user_id=msg.user_id, kind="payment_refunded", source=msg.message_id,
        booking_id=msg.booking_id, payment_id=msg.payment_id,
        amount=money(msg.amount, msg.currency), provider_reference=msg.provider_reference,
        reason_text=CANCELLATION_REASONS.get(msg.reason, ""),
    )


async def notify_event_cancelled(msg: EventCancelled, uow: UnitOfWork) -> None:
    """Tell the organizer. Ticket holders are told through booking_cancelled, one per booking."""
    await _notify(
        uow, user_id=msg.organizer_id, kind="event_cancelled", source=msg.message_id,
        event_id=msg.event_id, title=msg.title, venue=msg.venue,
        starts_at=msg.starts_at.strftime("%Y-%m-%d %H:%M %Z"), reason=msg.reason or "-",
    )


async def request_notification(msg: NotificationRequested, uow: UnitOfWork) -> None:
    """The `notifications` command: store free text for one user on one channel, under the
    id the sender chose. A user without an address for that channel gets a `failed` row."""
    contact = await ContactRepository(uow.conn).get(msg.user_id)
    context = _context("custom", {"subject": msg.subject or DEFAULT_SUBJECT, "body": msg.body})
    subject, body = _text(msg.channel, context, contact)
    await NotificationRepository(uow.conn).add(
        Notification.create(
            id=msg.notification_id, user_id=msg.user_id, kind=msg.kind, channel=msg.channel,
            subject=subject, body=body, source_message_id=msg.message_id, contact=contact,
            now=_now(), context=context,
        )
    )


async def send_notification(
    uow: UnitOfWork, *, user_id: uuid.UUID, channel: Channel, subject: str, body: str
) -> Notification:
    """An admin's free-text notification. Refused if the user is known and cannot be reached
    on ``channel``; waits as `pending_contact` if the user is not known yet."""
    contact = await ContactRepository(uow.conn).get(user_id)
    if contact is not None and contact.address_for(channel) is None:
        raise NoAddress(f"The user has no address for the {channel} channel.")
    context = _context("custom", {"subject": subject or DEFAULT_SUBJECT, "body": body})
    subject, body = _text(channel, context, contact)
    notification_id = uuid.uuid4()
    notification = Notification.create(
        id=notification_id, user_id=user_id, kind="custom", channel=channel, subject=subject,
        body=body, source_message_id=notification_id, contact=contact, now=_now(),
        context=context,
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
    async with db.unit_of_work() as uow:
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
                    notification.id, notification.channel, outcome.attempts, error, outcome.status,
                )
            await repo.save(outcome)
        await uow.commit()
    return len(due)


async def address_waiting(db: Database, *, contact_wait: timedelta, batch_size: int) -> int:
    """Release notifications whose user's contact has arrived; fail those that waited too long."""
    async with db.unit_of_work() as uow:
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
                    subject, body = _text(channel, notification.context, contact)
                    await repo.add(
                        Notification.create(
                            user_id=notification.user_id, kind=notification.kind,
                            channel=channel, subject=subject, body=body, contact=contact,
                            source_message_id=notification.source_message_id, now=now,
                            context=notification.context,
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
