"""On PostgreSQL a consumed message's notifications (and a new user's contact) are stored with
the inbox mark as ONE statement (kit.inbox). Proven against the real database: for every
message the rows are those the same writes store one by one in a unit of work (the SQLite
path, here on PostgreSQL and, at the end, on a real SQLite database), and a redelivery stores
nothing, whatever happened since."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from kit.db import Database
from kit.inbox import OneStatementHandler
from kit.consuming import consume_once
from apps.notifications import handlers
from apps.notifications.adapters.tables import contacts, notifications
from apps.notifications.bootstrap import build
from contracts.envelope import Envelope
from tests.notifications import helpers as h
from tests.support.db import sqlite_database

pytestmark = pytest.mark.integration


# message factory (for a user), its handler, the user's phone (SMS too when given)
CASES: list[tuple[Callable[[uuid.UUID], Envelope], OneStatementHandler[Any], str | None]] = [
    (h.booking_confirmed, handlers.notify_booking_confirmed, "+351910000010"),
    (h.booking_confirmed, handlers.notify_booking_confirmed, None),
    (lambda u: h.booking_cancelled(u, refund_due=True), handlers.notify_booking_cancelled, None),
    (
        lambda u: h.booking_cancelled(u, reason="payment_failed"),
        handlers.notify_booking_cancelled,
        None,
    ),
    (h.booking_expired, handlers.notify_booking_expired, "+351910000011"),
    (h.payment_failed, handlers.notify_payment_failed, None),
    (h.payment_refunded, handlers.notify_payment_refunded, None),
    (h.event_cancelled, handlers.notify_event_cancelled, None),
    (lambda u: h.notification_requested(u, channel="sms"), handlers.request_notification, None),
]
IGNORED = {
    "id",
    "user_id",
    "source_message_id",
    "created_at",
    "updated_at",
    "next_attempt_at",
    "recipient",
    "subject",
    "body",
    "context",
}  # per user or per run; text checked below


@pytest.fixture(scope="module")
async def service(start_service):
    async with start_service(build, connect_broker=False, delivery_worker=False) as svc:
        yield svc


async def register(service: Any, phone: str | None, *, one_statement: bool) -> uuid.UUID:
    msg = h.user_registered(phone=phone)
    handler = handlers.register_contact
    assert await consume_once(
        service.db, "q.user_registered", msg, handler if one_statement else handler.in_unit_of_work
    )
    return msg.user_id


def comparable(rows: list[Any], user: uuid.UUID) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        row = {k: v for k, v in r._mapping.items() if k not in IGNORED}
        row["text"] = (r.subject + r.body).replace(str(user), "<user>")
        row["template"] = r.context.get("template")
        out.append(row)
    return sorted(out, key=lambda r: r["channel"])


@pytest.mark.parametrize(("factory", "handler", "phone"), CASES)
async def test_one_statement_stores_what_the_unit_of_work_stores(service, factory, handler, phone):
    template: Envelope | None = None
    results = []
    for one_statement in (True, False):
        user = await register(service, phone, one_statement=one_statement)
        if template is None:
            msg = template = factory(user)
        else:  # the same message, to the other user
            who = "organizer_id" if hasattr(template, "organizer_id") else "user_id"
            new_ids = {
                k: uuid.uuid4() for k in ("message_id", "notification_id") if hasattr(template, k)
            }
            msg = template.model_copy(update={who: user, **new_ids})
        run = handler if one_statement else handler.in_unit_of_work
        assert await consume_once(service.db, "q", msg, run)
        assert not await consume_once(service.db, "q", msg, run)  # redelivered
        results.append(comparable(await h.stored(service, source_message_id=msg.message_id), user))
        welcome = await h.stored(service, user_id=user, kind="welcome")
        assert [w.recipient for w in welcome] == [f"u{user.hex[:10]}@example.com"]
    assert results[0] == results[1]


async def test_unknown_user_gets_a_waiting_email_and_the_contact_comes_with_its_welcome(service):
    user = uuid.uuid4()
    msg = h.booking_expired(user)
    assert await consume_once(service.db, "q", msg, handlers.notify_booking_expired)
    [row] = await h.stored(service, source_message_id=msg.message_id)
    assert (row.channel, row.status, row.recipient) == ("email", "pending_contact", None)
    assert row.context["template"] == "booking_expired"

    registered = h.user_registered(user, full_name="Grace Hopper")
    assert await consume_once(service.db, "q.ur", registered, handlers.register_contact)
    contact = await h.contact_of(service, user)
    assert (contact.email, contact.full_name) == (registered.email, "Grace Hopper")
    [welcome] = await h.stored(service, source_message_id=registered.message_id)
    assert welcome.body.startswith("Hello Grace Hopper,")


async def test_a_redelivery_stores_nothing_even_after_the_rows_are_gone(service):
    user = await register(service, "+351910000012", one_statement=True)
    msg = h.booking_confirmed(user)
    assert await consume_once(service.db, "q", msg, handlers.notify_booking_confirmed)
    async with service.db.engine.begin() as conn:  # e.g. an operator purged them meanwhile
        await conn.execute(
            sa.delete(notifications).where(notifications.c.source_message_id == msg.message_id)
        )
    assert not await consume_once(service.db, "q", msg, handlers.notify_booking_confirmed)
    assert await h.stored(service, source_message_id=msg.message_id) == []


# --- PostgreSQL (one statement) and SQLite (the same writes one by one) agree ----------------

TIMES = {"id", "created_at", "updated_at", "next_attempt_at"}  # made per delivery


@pytest.fixture
async def sqlite_db(tmp_path):
    async with sqlite_database(
        "notifications", tmp_path
    ) as db:  # its migrations, on SQLite (embedded)
        yield db


async def rows_of(db: Database, users: set[uuid.UUID]) -> list[dict[str, Any]]:
    async with db.read() as conn:
        found = (
            await conn.execute(sa.select(notifications).where(notifications.c.user_id.in_(users)))
        ).all()
        people = await conn.execute(sa.select(contacts).where(contacts.c.user_id.in_(users)))
        people = sorted(
            ({k: v for k, v in r._mapping.items() if k != "updated_at"} for r in people),
            key=lambda r: str(r["user_id"]),
        )
    out = [{k: v for k, v in r._mapping.items() if k not in TIMES} for r in found]
    return sorted(out, key=lambda r: (str(r["source_message_id"]), r["channel"])) + people


async def test_postgresql_and_sqlite_store_the_same_rows_for_the_same_messages(service, sqlite_db):
    """Every case above, plus a message for a user not known yet, delivered twice to each."""
    messages: list[tuple[Envelope, Any]] = []
    users = set()
    for factory, handler, phone in CASES:
        registered = h.user_registered(phone=phone)
        messages += [
            (registered, handlers.register_contact),
            (factory(registered.user_id), handler),
        ]
        users.add(registered.user_id)
    stranger = uuid.uuid4()
    messages.append((h.booking_expired(stranger), handlers.notify_booking_expired))
    users.add(stranger)
    assert service.db.is_postgres and not sqlite_db.is_postgres
    for db in (service.db, sqlite_db):
        for msg, handler in messages + messages:
            await consume_once(db, "q", msg, handler)
    on_postgres = await rows_of(service.db, users)
    assert len(on_postgres) > len(messages)
    assert await rows_of(sqlite_db, users) == on_postgres
