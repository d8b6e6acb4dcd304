"""Webhooks on SQLite (the embedded mode): the same use cases write the deliveries with the
inbox mark (one by one in the unit of work), the claim leases them without row locks, and the
signed request reaches the receiver."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook

from apps.notifications import handlers, webhooks
from apps.notifications.adapters.tables import webhook_deliveries
from apps.notifications.adapters.webhooks import SecretBox, WebhookSender, WebhookTargets
from apps.notifications.config import NotificationSettings
from kit.bindings import OptionalBindings
from apps.notifications.domain import WebhookBackoff
from kit.consuming import consume_once
from kit.security import Principal
from kit.uow import UnitOfWork
from tests.notifications import helpers as h
from tests.notifications.webhook_receiver import Receiver
from tests.support.db import sqlite_database
from tests.support.waiting import eventually


@pytest.fixture
async def sqlite_db(tmp_path):
    async with sqlite_database("notifications", tmp_path) as db:
        yield db


async def test_a_message_is_fanned_out_and_delivered_on_sqlite(sqlite_db):
    receiver = Receiver()
    await receiver.start()
    targets = WebhookTargets(f"127.0.0.1:{receiver.port}")
    sender = WebhookSender(targets, timeout=5)
    box = SecretBox(NotificationSettings().webhook_encryption_key or "")
    try:
        organizer = Principal(uuid.uuid4(), "organizer", {})
        created = h.event_created(organizer.user_id)
        async with UnitOfWork(sqlite_db) as uow:
            hook = await webhooks.register_webhook(
                uow,
                owner=organizer,
                url=receiver.url("ok-sqlite"),
                kinds=["booking_confirmed"],
                event_id=None,
                targets=targets,
                box=box,
                bindings=OptionalBindings.always_bound(),
                max_per_owner=20,
            )
            await uow.commit()
        assert await consume_once(sqlite_db, "q", created, handlers.pass_to_webhooks)
        msg = h.booking_confirmed(event_id=created.event_id)
        other = h.booking_confirmed()  # an event of somebody else's (unknown here)
        for m in (msg, msg, other):  # a redelivery adds nothing
            await consume_once(sqlite_db, "q", m, handlers.notify_booking_confirmed)
        async with sqlite_db.read() as conn:
            rows = (await conn.execute(sa.select(webhook_deliveries))).all()
        assert [r.message_id for r in rows] == [msg.message_id]

        [row] = await webhooks.claim_deliveries(
            sqlite_db, limit=10, per_endpoint=2, in_flight={}, lease_seconds=60
        )
        assert (
            await webhooks.claim_deliveries(
                sqlite_db, limit=10, per_endpoint=2, in_flight={}, lease_seconds=60
            )
            == []
        )  # leased
        outcome = await webhooks.send_delivery(sqlite_db, sender, box, WebhookBackoff(), row)
        assert outcome.ok
        [request] = await eventually(lambda: receiver.at("ok-sqlite"))
        payload = Webhook(hook.secret).verify(request.body, request.headers)
        assert payload["data"]["booking_id"] == str(msg.booking_id)
        async with sqlite_db.read() as conn:
            [row] = (await conn.execute(sa.select(webhook_deliveries))).all()
        assert row.status == "delivered" and row.attempts == 1 and row.last_status_code == 204
    finally:
        await sender.aclose()
        await receiver.stop()


async def test_a_message_consumed_before_its_event_is_passed_on_once_on_sqlite(sqlite_db):
    organizer = Principal(uuid.uuid4(), "organizer", {})
    created = h.event_created(organizer.user_id)
    async with UnitOfWork(sqlite_db) as uow:
        hook = await webhooks.register_webhook(
            uow,
            owner=organizer,
            url="http://127.0.0.1:9/in",
            kinds=["booking_confirmed"],
            event_id=None,
            targets=WebhookTargets("127.0.0.1:9"),
            box=SecretBox(NotificationSettings().webhook_encryption_key or ""),
            bindings=OptionalBindings.always_bound(),
            max_per_owner=20,
        )
        await uow.commit()
    msg = h.booking_confirmed(event_id=created.event_id)
    assert await consume_once(sqlite_db, "q", msg, handlers.notify_booking_confirmed)
    assert await webhooks.release_waiting(sqlite_db, limit=10) == 0  # still unknown
    assert await consume_once(sqlite_db, "q", created, handlers.pass_to_webhooks)
    assert await webhooks.release_waiting(sqlite_db, limit=10) == 1
    assert not await consume_once(sqlite_db, "q", msg, handlers.notify_booking_confirmed)
    assert await webhooks.release_waiting(sqlite_db, limit=10) == 0
    async with sqlite_db.read() as conn:
        rows = (await conn.execute(sa.select(webhook_deliveries))).all()
    assert [(r.message_id, r.endpoint_id) for r in rows] == [(msg.message_id, hook.row.id)]
