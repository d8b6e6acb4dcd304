"""A booking, payment or ticket message names its event but not the event's organizer, whom
notifications learns from the event messages, consumed on another queue: one can arrive before
the other. Such a message waits (with its inbox mark) until notifications knows whose event it
is, then reaches that organizer's endpoints, once. Against the real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from apps.notifications import handlers, webhooks
from apps.notifications.adapters.tables import webhook_deliveries, webhook_waiting
from apps.notifications.bootstrap import build
from apps.notifications.domain import WEBHOOK_RETRY_WINDOW, delivery_id
from kit.consuming import consume_once
from tests.conftest import http_client
from tests.notifications import helpers as h
from tests.notifications.helpers import FAST_RETRIES, send
from tests.support.tokens import bearer, mint
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def service(start_service, module_sink, receiver):
    # A database of its own: the admins' endpoints here receive every event's messages.
    async with start_service(
        build,
        database_prefix=os.environ["DATABASE_PREFIX"] + "late_",
        smtp_port=module_sink.port,
        webhook_allowed_hosts=f"127.0.0.1:{receiver.port}",
        webhook_poll_seconds=0.05,
        **FAST_RETRIES,
    ) as svc:
        yield svc


async def registered(
    service: Any, owner: uuid.UUID, url: str, kinds: list[str], role: str = "organizer"
) -> dict[str, Any]:
    async with http_client(service) as client:
        r = await client.post(
            "/notifications/webhooks",
            json={"url": url, "events": kinds},
            headers=bearer(mint(owner, role)),
        )
    assert r.status_code == 201, r.text
    return r.json()


async def deliveries_of(service: Any, message_id: uuid.UUID) -> dict[uuid.UUID, int]:
    """endpoint id -> how many delivery rows ``message_id`` has for it."""
    d = webhook_deliveries
    async with service.db.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(d.c.endpoint_id, sa.func.count())
            .where(d.c.message_id == message_id)
            .group_by(d.c.endpoint_id)
        )
        return {r[0]: r[1] for r in rows}


async def waiting(service: Any, message_id: uuid.UUID) -> Any:
    w = webhook_waiting
    async with service.db.engine.connect() as conn:
        return (await conn.execute(sa.select(w).where(w.c.message_id == message_id))).first()


async def handled(service: Any, message_id: uuid.UUID) -> Any:
    async with service.db.engine.connect() as conn:
        return (
            await conn.execute(
                sa.text("SELECT 1 FROM inbox WHERE message_id = :m"), {"m": message_id}
            )
        ).first()


async def test_a_booking_consumed_before_its_event_reaches_the_organizer_once(
    service, bus, receiver
):
    organizer, admin = uuid.uuid4(), uuid.uuid4()
    created = h.event_created(organizer)
    mine = await registered(service, organizer, receiver.url("ok-late"), ["booking_confirmed"])
    admins = await registered(
        service, admin, receiver.url("ok-late-admin"), ["booking_confirmed"], role="admin"
    )

    booking = h.booking_confirmed(event_id=created.event_id)
    await send(bus, booking)  # before notifications has heard of the event
    await eventually(lambda: handled(service, booking.message_id))
    # The admin's endpoint gets it at once; the organizer's has to wait.
    [to_admin] = await eventually(lambda: receiver.at("ok-late-admin"))
    assert receiver.to("ok-late") == []
    assert await waiting(service, booking.message_id) is not None

    await send(bus, created)
    [request] = await eventually(lambda: receiver.at("ok-late"))
    expected = delivery_id(booking.message_id, uuid.UUID(mine["id"]))
    assert request.headers["webhook-id"] == f"msg_{expected.hex}"
    await eventually(lambda: waiting(service, booking.message_id), until=lambda w: w is None)

    # Redelivered, both messages change nothing; nobody gets a second copy.
    await send(bus, booking)
    await send(bus, created)
    await asyncio.sleep(0.5)
    assert await waiting(service, booking.message_id) is None
    assert await deliveries_of(service, booking.message_id) == {
        uuid.UUID(mine["id"]): 1,
        uuid.UUID(admins["id"]): 1,
    }
    assert len(receiver.to("ok-late")) == 1
    assert [r.headers["webhook-id"] for r in receiver.to("ok-late-admin")] == [
        to_admin.headers["webhook-id"]
    ]


async def test_the_release_passes_a_waiting_message_on_once_and_only_to_earlier_endpoints(
    service, receiver
):
    """The release on its own (the worker runs it each round; here twice more by hand)."""
    organizer, admin = uuid.uuid4(), uuid.uuid4()
    created = h.event_created(organizer)
    kinds = ["payment_failed"]
    admins = await registered(service, admin, receiver.url("fail-admin"), kinds, "admin")
    early = await registered(service, organizer, receiver.url("fail-early"), kinds)
    failed = h.payment_failed(event_id=created.event_id)
    assert await consume_once(service.db, "q.pf", failed, handlers.notify_payment_failed)
    late = await registered(service, organizer, receiver.url("fail-late"), kinds)
    assert await consume_once(service.db, "q.ec", created, handlers.pass_to_webhooks)
    for _ in range(2):
        await webhooks.release_waiting(service.db, limit=10)
    assert not await consume_once(service.db, "q.pf", failed, handlers.notify_payment_failed)
    await webhooks.release_waiting(service.db, limit=10)
    # The endpoint registered after the message was consumed does not get it (as if the
    # organizer had been known then); the admin's got it at first sight, and only then.
    assert await deliveries_of(service, failed.message_id) == {
        uuid.UUID(early["id"]): 1,
        uuid.UUID(admins["id"]): 1,
    }
    assert uuid.UUID(late["id"]) != uuid.UUID(early["id"])
    assert await waiting(service, failed.message_id) is None


async def test_a_message_whose_event_never_comes_is_dropped_after_a_day(service, receiver):
    organizer = uuid.uuid4()
    await registered(service, organizer, receiver.url("fail-never"), ["booking_expired"])
    expired = h.booking_expired()  # an event notifications never hears of
    assert await consume_once(service.db, "q.be", expired, handlers.notify_booking_expired)
    assert await waiting(service, expired.message_id) is not None
    w = webhook_waiting
    async with service.db.engine.begin() as conn:
        await conn.execute(
            w.update()
            .where(w.c.message_id == expired.message_id)
            .values(created_at=sa.func.now() - WEBHOOK_RETRY_WINDOW - timedelta(minutes=1))
        )
    await webhooks.release_waiting(service.db, limit=10)
    assert await waiting(service, expired.message_id) is None
    assert await deliveries_of(service, expired.message_id) == {}


async def test_nothing_waits_when_no_organizer_endpoint_wants_the_kind(service):
    msg = h.booking_cancelled()
    assert await consume_once(service.db, "q.bc", msg, handlers.notify_booking_cancelled)
    assert await handled(service, msg.message_id)
    assert await waiting(service, msg.message_id) is None
