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
from apps.notifications.entrypoints.messages import SUBSCRIPTIONS, WEBHOOK_ONLY
from contracts.topology import WEBHOOK_MESSAGES
from tests.conftest import VHOST, http_client
from tests.notifications import helpers as h
from tests.notifications.helpers import FAST_RETRIES, send
from tests.support import messages
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


async def bound_kinds() -> set[str]:
    """The webhook-only kinds the domain exchange routes to notifications' queues now."""
    return await bound_routing_keys(VHOST, "notifications") & set(KINDS)


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
    # the webhook kinds that are no notice of the service's own and name no organizer
    own = {message for message, _handler, _description in SUBSCRIPTIONS}
    assert set(WEBHOOK_ONLY) == {
        m for m in WEBHOOK_MESSAGES if m not in own and "organizer_id" not in m.model_fields
    }
    assert await bindings(service).reconcile(service.db) == dict.fromkeys(KINDS, False)
    assert await bound_kinds() == set()

    owner = uuid.uuid4()
    hook = await register(service, owner, receiver.url("ok-bound"), ["booking_created"])
    assert await bound_kinds() == {"booking_created"}  # before the registration was answered
    # kept by the next reconcile: an endpoint subscribes to it
    assert (await bindings(service).reconcile(service.db))["booking_created"] is True
    assert await bound_kinds() == {"booking_created"}

    await delete(service, owner, hook["id"])
    assert await bound_kinds() == {"booking_created"}  # a deletion leaves it to the reconcile
    assert (await bindings(service).reconcile(service.db))["booking_created"] is False
    assert await bound_kinds() == set()


async def test_an_endpoint_gets_what_is_published_after_its_registration(service, bus, receiver):
    organizer = uuid.uuid4()
    created = h.event_created(organizer)
    await send(bus, created)
    await bindings(service).reconcile(service.db)
    before = messages.booking_created(event_id=created.event_id)
    await send(bus, before)  # nobody subscribes: not even routed to the service

    await register(service, organizer, receiver.url("ok-after"), ["booking_created"])
    after = messages.booking_created(event_id=created.event_id)
    await send(bus, after)
    [request] = await eventually(lambda: receiver.at("ok-after"))
    assert str(after.booking_id) in request.body
    # One queue delivers in order: had `before` been routed, it would have been consumed first.
    assert await handled(service, after.message_id)
    assert not await handled(service, before.message_id)


async def test_a_registration_during_a_reconcile_that_saw_no_endpoint_stays_bound(
    service, receiver
):
    """The race the locks are for: a reconcile has read that no endpoint subscribes to a kind
    and is about to unbind it when a registration for that kind comes in. The registration
    waits for the reconcile to finish, then binds: the kind ends bound. (Without the locks the
    registration binds and commits first, and the reconcile's unbind then cuts it off.)"""
    b = bindings(service)
    await b.reconcile(service.db)
    real, seen, go_on = b.needed, asyncio.Event(), asyncio.Event()

    async def needed_then_pause(conn: Any, key: str) -> bool:
        answer = await real(conn, key)
        if key == "refund_failed":
            seen.set()
            await go_on.wait()
        return answer

    b.needed = needed_then_pause
    try:
        reconcile = asyncio.create_task(b.reconcile(service.db))
        await asyncio.wait_for(seen.wait(), 10)  # it read "nobody": False
        owner = uuid.uuid4()
        registration = asyncio.create_task(
            register(service, owner, receiver.url("ok-race"), ["refund_failed"])
        )
        await asyncio.wait({registration}, timeout=2.0)
        assert not registration.done()  # waits for the reconcile's lock
        go_on.set()
        assert (await reconcile)["refund_failed"] is False
        await registration
    finally:
        b.needed = real
        go_on.set()
    assert "refund_failed" in await bound_kinds()
    assert (await b.reconcile(service.db))["refund_failed"] is True


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
