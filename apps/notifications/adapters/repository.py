"""Contacts and notifications table access. Takes the unit of work's connection; never commits."""

from __future__ import annotations

import uuid
from dataclasses import asdict, fields
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from apps.notifications.adapters.tables import contacts, notifications
from apps.notifications.domain import Contact, Notification

_COLUMNS = [f.name for f in fields(Notification)]


def _to_notification(row: sa.Row) -> Notification:
    return Notification(**{k: getattr(row, k) for k in _COLUMNS})


class ContactRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def get(self, user_id: uuid.UUID) -> Contact | None:
        row = (
            await self.conn.execute(sa.select(contacts).where(contacts.c.user_id == user_id))
        ).first()
        if row is None:
            return None
        return Contact(user_id=row.user_id, email=row.email, full_name=row.full_name, phone=row.phone)

    async def put(self, contact: Contact, *, now: datetime) -> None:
        values = {**asdict(contact), "updated_at": now}
        stmt = pg_insert(contacts).values(**values)
        await self.conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[contacts.c.user_id],
                set_={k: stmt.excluded[k] for k in ("email", "full_name", "phone", "updated_at")},
            )
        )


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
        values = asdict(n)
        values.pop("id")
        await self.conn.execute(
            notifications.update().where(notifications.c.id == n.id).values(**values)
        )

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
        stmt = (
            sa.select(notifications)
            .where(notifications.c.user_id == user_id)
            .order_by(notifications.c.created_at.desc(), notifications.c.id.desc())
            .limit(limit)
        )
        if before is not None:
            stmt = stmt.where(
                sa.tuple_(notifications.c.created_at, notifications.c.id) < sa.tuple_(*before)
            )
        return [_to_notification(r) for r in (await self.conn.execute(stmt)).all()]
