"""Contacts and notifications table access. Takes the unit of work's connection; never commits.

What a consumed message stores (a contact, its notifications) is declared once as writes with
the consumer's inbox mark (:func:`store_statement`, see ``kit.inbox``): one statement on
PostgreSQL, the same writes one by one on SQLite.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import asdict, fields
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from kit.pagination import newest_first
from kit.tables import update_by_id
from kit.inbox import Statement, Writes, insert_from_mark, once_per_message
from apps.notifications.adapters.tables import (
    contacts,
    event_organizers,
    notifications,
    webhook_deliveries,
    webhook_waiting,
)
from apps.notifications.domain import Contact, Notification

_COLUMNS = [f.name for f in fields(Notification)]
_CONTACT_FIELDS = ("email", "full_name", "phone", "updated_at")
_CONTACT_BY_USER = sa.select(contacts).where(contacts.c.user_id == sa.bindparam("user_id"))


def _to_notification(row: sa.Row) -> Notification:
    return Notification(**{k: getattr(row, k) for k in _COLUMNS})


class ContactRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def get(self, user_id: uuid.UUID) -> Contact | None:
        row = (await self.conn.execute(_CONTACT_BY_USER, {"user_id": user_id})).first()
        if row is None:
            return None
        return Contact(
            user_id=row.user_id, email=row.email, full_name=row.full_name, phone=row.phone
        )


# --- what a consumed message writes, with the consumer's inbox mark -----------------------------

_PUT_CONTACT = insert_from_mark(
    contacts,
    "ON CONFLICT (user_id) DO UPDATE SET "
    + ", ".join(f"{k} = EXCLUDED.{k}" for k in _CONTACT_FIELDS),
    prefix="contact_",
)


_PUT_ORGANIZER = insert_from_mark(
    event_organizers,
    "ON CONFLICT (event_id) DO UPDATE SET organizer_id = EXCLUDED.organizer_id, "
    "updated_at = EXCLUDED.updated_at",
    prefix="org_",
)


# A message that waits for its event's organizer: kept once, whatever a redelivery does.
_WAIT = insert_from_mark(webhook_waiting, "ON CONFLICT DO NOTHING", prefix="wait_")


@functools.lru_cache(maxsize=256)
def _store(
    with_contact: bool,
    count: int,
    with_organizer: bool = False,
    hooks: int = 0,
    waits: bool = False,
) -> Writes:
    """Built once per shape: the contact or not, how many notifications (1-3 channels), the
    event's organizer or not, how many webhook deliveries, and whether the message waits for
    its event's organizer."""
    adds = [
        # a notification already stored for this (source message, kind, channel) is kept
        insert_from_mark(notifications, "ON CONFLICT DO NOTHING", prefix=f"n{i}_")
        for i in range(count)
    ]
    deliveries = [
        insert_from_mark(webhook_deliveries, "ON CONFLICT DO NOTHING", prefix=f"w{i}_")
        for i in range(hooks)
    ]
    return once_per_message(
        *([_PUT_CONTACT] if with_contact else []),
        *([_PUT_ORGANIZER] if with_organizer else []),
        *adds,
        *deliveries,
        *([_WAIT] if waits else []),
    )


def store_statement(
    added: Sequence[Notification],
    *,
    contact: Contact | None = None,
    now: datetime | None = None,
    organizer: tuple[uuid.UUID, uuid.UUID] | None = None,
    deliveries: Sequence[dict[str, object]] = (),
    waiting: dict[str, object] | None = None,
) -> Statement:
    """Store ``contact`` (if given; a known user's is replaced), each of ``added`` (unless one
    for the same source message, kind and channel is stored), the ``(event_id, organizer_id)``
    pair, the webhook ``deliveries`` (rows of ``webhook_deliveries``) and the message
    ``waiting`` for its event's organizer (a row of ``webhook_waiting``), with the inbox mark;
    with none of them, the mark alone."""
    params: dict[str, object] = {}
    if contact is not None:
        params |= {f"contact_{k}": v for k, v in asdict(contact).items()}
        params["contact_updated_at"] = now
    if organizer is not None:
        params |= {"org_event_id": organizer[0], "org_organizer_id": organizer[1]}
        params["org_updated_at"] = now
    for i, n in enumerate(added):
        params |= {f"n{i}_{k}": getattr(n, k) for k in _COLUMNS}
    for i, d in enumerate(deliveries):
        params |= {f"w{i}_{k}": v for k, v in d.items()}
    if waiting is not None:
        params |= {f"wait_{k}": v for k, v in waiting.items()}
    writes = _store(
        contact is not None,
        len(added),
        organizer is not None,
        len(deliveries),
        waiting is not None,
    )
    return Statement(writes, params)


class NotificationRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, notification: Notification) -> bool:
        """Store it unless one for the same (source message, kind, channel) exists. True if new."""
        stmt = (
            pg_insert(notifications)
            .values(**asdict(notification))
            .on_conflict_do_nothing()
            .returning(notifications.c.id)
        )
        return (await self.conn.execute(stmt)).first() is not None

    async def get(self, notification_id: uuid.UUID) -> Notification | None:
        row = (
            await self.conn.execute(
                sa.select(notifications).where(notifications.c.id == notification_id)
            )
        ).first()
        return _to_notification(row) if row else None

    async def save(self, n: Notification) -> None:
        await self.conn.execute(update_by_id(notifications, asdict(n)))

    async def claim_due(self, *, now: datetime, limit: int) -> list[Notification]:
        """Pending notifications whose time has come, locked for this transaction; rows another
        worker holds are skipped, so replicas share the work and never send one twice."""
        stmt = (
            sa.select(notifications)
            .where(notifications.c.status == "pending", notifications.c.next_attempt_at <= now)
            .order_by(notifications.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [_to_notification(r) for r in (await self.conn.execute(stmt)).all()]

    async def claim_waiting_for_contact(
        self, *, expire_before: datetime, limit: int
    ) -> list[tuple[Notification, Contact | None]]:
        """Notifications waiting for a contact that has arrived meanwhile (with it), or that have
        waited since before ``expire_before`` (contact None), locked for this transaction."""
        stmt = (
            sa.select(notifications, contacts.c.email, contacts.c.full_name, contacts.c.phone)
            .outerjoin(contacts, contacts.c.user_id == notifications.c.user_id)
            .where(
                notifications.c.status == "pending_contact",
                sa.or_(
                    contacts.c.user_id.is_not(None),
                    notifications.c.created_at < expire_before,
                ),
            )
            .order_by(notifications.c.created_at)
            .limit(limit)
            .with_for_update(of=notifications, skip_locked=True)
        )
        out = []
        for row in (await self.conn.execute(stmt)).all():
            contact = None
            if row.email is not None:
                contact = Contact(
                    user_id=row.user_id, email=row.email, full_name=row.full_name, phone=row.phone
                )
            out.append((_to_notification(row), contact))
        return out

    async def page_for_user(
        self, user_id: uuid.UUID, *, limit: int, before: tuple[datetime, uuid.UUID] | None
    ) -> list[Notification]:
        n = notifications
        stmt = newest_first(n, n.c.user_id == user_id, limit=limit, before=before)
        return [_to_notification(r) for r in (await self.conn.execute(stmt)).all()]
