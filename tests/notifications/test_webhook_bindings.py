"""The webhook-only message kinds reach notifications only while an endpoint subscribes to them
(``apps/notifications/adapters/bindings.py``), against the real RabbitMQ and PostgreSQL. The
bindings are read with ``rabbitmqctl list_bindings``, as an operator would."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from yarl import URL as make_url

from apps.notifications.bootstrap import build
from apps.notifications.deps import NotificationsDeps
from apps.notifications.entrypoints.messages import WEBHOOK_ONLY
from tests.conftest import VHOST, http_client
from tests.notifications import helpers as h
from tests.notifications.helpers import FAST_RETRIES, send
from tests.support.bus import bound_routing_keys
from tests.support.tcp_proxy import TcpProxy
from tests.support.tokens import bearer, mint
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

KINDS = sorted(m.routing_key for m in WEBHOOK_ONLY)


@pytest.fixture(scope="module")
async def service(start_service, module_sink, receiver):
    # A database of its own: no endpoint of the other tests' services subscribes to anything.
    async with start_service(
        build,
        database_prefix=os.environ["DATABASE_PREFIX"] + "bindings_",
        smtp_port=module_sink.port,
        webhook_allowed_hosts=f"127.0.0.1:{receiver.port}",
        webhook_poll_seconds=0.05,
        **FAST_RETRIES,
    ) as svc:
        yield svc


def bound_kinds() -> set[str]:
    """The webhook-only kinds the domain exchange routes to notifications' queues now."""
    return bound_routing_keys(VHOST, "notifications") & set(KINDS)


def bindings(service: Any) -> Any:
    return NotificationsDeps.of(service).bindings


async def register(service: Any, owner: uuid.UUID, url: str, kinds: list[str]) -> dict[str, Any]:
    async with http_client(service) as client:
        r = await client.post(
            "/notifications/webhooks",
            json={"url": url, "events": kinds},
            headers=bearer(mint(owner, "organizer")),
        )
    assert r.status_code == 201, r.text
    return r.json()


async def delete(service: Any, owner: uuid.UUID, webhook_id: str) -> None:
    async with http_client(service) as client:
        r = await client.delete(
            f"/notifications/webhooks/{webhook_id}", headers=bearer(mint(owner, "organizer"))
        )
    assert r.status_code == 204, r.text


async def handled(service: Any, message_id: uuid.UUID) -> bool:
    async with service.db.engine.connect() as conn:
        row = await conn.execute(
            sa.text("SELECT 1 FROM inbox WHERE message_id = :m"), {"m": message_id}
        )
        return row.first() is not None


async def test_a_kind_is_bound_while_an_endpoint_subscribes_to_it(service, receiver):
    assert KINDS == ["booking_created", "payment_confirmed", "refund_failed", "ticket_checked_in"]
    assert await bindings(service).reconcile(service.db) == dict.fromkeys(KINDS, False)
    assert bound_kinds() == set()

    owner = uuid.uuid4()
    hook = await register(service, owner, receiver.url("ok-bound"), ["booking_created"])
    assert bound_kinds() == {"booking_created"}  # before the registration was answered
    # kept by the next reconcile: an endpoint subscribes to it
    assert (await bindings(service).reconcile(service.db))["booking_created"] is True
    assert bound_kinds() == {"booking_created"}

    await delete(service, owner, hook["id"])
    assert bound_kinds() == {"booking_created"}  # a deletion leaves it to the reconcile
    assert (await bindings(service).reconcile(service.db))["booking_created"] is False
    assert bound_kinds() == set()


async def test_an_endpoint_gets_what_is_published_after_its_registration(service, bus, receiver):
    organizer = uuid.uuid4()
    created = h.event_created(organizer)
    await send(bus, created)
    await bindings(service).reconcile(service.db)
    before = h.booking_created(event_id=created.event_id)
    await send(bus, before)  # nobody subscribes: not even routed to the service

    await register(service, organizer, receiver.url("ok-after"), ["booking_created"])
    after = h.booking_created(event_id=created.event_id)
    await send(bus, after)
    [request] = await eventually(lambda: receiver.at("ok-after"))
    assert str(after.booking_id) in request.body
    # One queue delivers in order: had `before` been routed, it would have been consumed first.
    assert await handled(service, after.message_id)
    assert not await handled(service, before.message_id)


async def test_reconciles_racing_registrations_never_unbind_a_subscribed_kind(service, receiver):
    """Reconciles run back to back while endpoints for a kind come and go: after each
    registration was answered its kind is bound, whatever the reconciles did meanwhile."""
    stop = asyncio.Event()

    async def reconciling() -> int:
        rounds = 0
        while not stop.is_set():
            await bindings(service).reconcile(service.db)
            rounds += 1
        return rounds

    task = asyncio.create_task(reconciling())
    try:
        for n in range(5):
            owner = uuid.uuid4()
            hook = await register(service, owner, receiver.url(f"ok-race-{n}"), ["refund_failed"])
            assert "refund_failed" in bound_kinds()
            await delete(service, owner, hook["id"])
    finally:
        stop.set()
        rounds = await task
    assert rounds >= 5
    await bindings(service).reconcile(service.db)
    assert "refund_failed" not in bound_kinds()


async def test_a_registration_while_the_broker_is_unreachable_is_refused_and_stores_nothing(
    start_service, module_sink, receiver, rabbitmq_url
):
    broker = make_url(rabbitmq_url)
    proxy = TcpProxy(broker.port or 5672)
    await proxy.start()
    through_proxy = str(broker.with_host("127.0.0.1").with_port(proxy.port))
    async with start_service(
        build,
        rabbitmq_url=through_proxy,
        database_prefix=os.environ["DATABASE_PREFIX"] + "bindings_cut_",
        smtp_port=module_sink.port,
        webhook_allowed_hosts=f"127.0.0.1:{receiver.port}",
    ) as cut_off:
        await proxy.cut()
        owner = uuid.uuid4()
        async with http_client(cut_off) as client:
            r = await client.post(
                "/notifications/webhooks",
                json={"url": receiver.url("ok-never"), "events": ["ticket_checked_in"]},
                headers=bearer(mint(owner, "organizer")),
            )
            listed = await client.get(
                "/notifications/webhooks", headers=bearer(mint(owner, "organizer"))
            )
    assert r.status_code == 503, r.text
    assert r.json()["type"].endswith("/broker-unavailable")
    assert r.headers["Retry-After"] == "1"
    assert listed.json()["items"] == []
