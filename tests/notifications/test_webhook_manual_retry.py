"""A manual retry of a webhook delivery (``POST .../deliveries/{id}/retry``) never sends it
twice: while the worker has it in flight (leased, being sent) the retry is refused with 409
``delivery-in-flight`` and changes nothing; once the attempt is recorded, a retry sends it
again (a delivered one too). On the real PostgreSQL, the worker's steps run by the test."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from apps.notifications import handlers, webhooks
from apps.notifications.adapters.tables import webhook_deliveries
from apps.notifications.adapters.webhooks import WebhookSender
from apps.notifications.bootstrap import build
from apps.notifications.deps import NotificationsDeps
from apps.notifications.domain import WebhookBackoff
from kit.consuming import consume_once
from tests.conftest import http_client
from tests.notifications import helpers as h
from tests.support.tokens import bearer, mint

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def service(start_service, receiver):
    # No worker of its own: the test plays the worker, step by step.
    async with start_service(
        build,
        connect_broker=False,
        database_prefix=os.environ["DATABASE_PREFIX"] + "retry_",
        webhook_allowed_hosts=f"127.0.0.1:{receiver.port}",
        webhook_worker=False,
        delivery_worker=False,
    ) as svc:
        yield svc


async def claim(service: Any) -> list[Any]:
    return await webhooks.claim_deliveries(
        service.db, limit=10, per_endpoint=2, in_flight={}, lease_seconds=60
    )


async def retry(service: Any, owner: uuid.UUID, hook: str, delivery: uuid.UUID) -> Any:
    async with http_client(service) as client:
        return await client.post(
            f"/notifications/webhooks/{hook}/deliveries/{delivery}/retry",
            headers=bearer(mint(owner, "organizer")),
        )


async def stored(service: Any, delivery: uuid.UUID) -> Any:
    d = webhook_deliveries
    async with service.db.engine.connect() as conn:
        return (await conn.execute(sa.select(d).where(d.c.id == delivery))).one()


async def test_a_delivery_in_flight_is_not_retried_by_hand_and_is_sent_once(service, receiver):
    organizer = uuid.uuid4()
    async with http_client(service) as client:
        r = await client.post(
            "/notifications/webhooks",
            json={"url": receiver.url("ok-retry"), "events": ["booking_confirmed"]},
            headers=bearer(mint(organizer, "organizer")),
        )
    assert r.status_code == 201, r.text
    hook = r.json()["id"]
    created = h.event_created(organizer)
    assert await consume_once(service.db, "q.ec", created, handlers.pass_to_webhooks)
    msg = h.booking_confirmed(event_id=created.event_id)
    assert await consume_once(service.db, "q.bc", msg, handlers.notify_booking_confirmed)

    [row] = await claim(service)  # the worker leased it and is sending it
    before = await stored(service, row.id)
    r = await retry(service, organizer, hook, row.id)
    assert r.status_code == 409, r.text
    assert r.json()["type"].endswith("/delivery-in-flight")
    assert await stored(service, row.id) == before  # nothing changed
    assert await claim(service) == []  # no second worker takes it

    deps = NotificationsDeps.of(service)
    sender = WebhookSender(deps.webhook_targets, timeout=5)
    try:
        outcome = await webhooks.send_delivery(
            service.db, sender, deps.secret_box, WebhookBackoff(), row
        )
        assert outcome.ok
        assert len(receiver.to("ok-retry")) == 1

        # Its attempt recorded, a retry by hand sends it once more (delivered or not).
        r = await retry(service, organizer, hook, row.id)
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "pending"
        [again] = await claim(service)
        assert again.id == row.id
        assert await claim(service) == []
        assert (await retry(service, organizer, hook, row.id)).status_code == 409
        await webhooks.send_delivery(service.db, sender, deps.secret_box, WebhookBackoff(), again)
    finally:
        await sender.aclose()
    assert len(receiver.to("ok-retry")) == 2
    assert (await stored(service, row.id)).attempts == 2
