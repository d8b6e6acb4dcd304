"""Organizers' signed webhooks, against the real RabbitMQ and PostgreSQL, delivered over HTTP to
a receiver running in the test (which checks signatures with the standardwebhooks library)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook

from apps.notifications.adapters.tables import webhook_deliveries, webhook_endpoints
from apps.notifications.bootstrap import build
from apps.notifications.deps import NotificationsDeps
from apps.notifications.webhooks import WEBHOOK_KINDS
from contracts.messages import BookingCreated
from tests.conftest import http_client
from tests.notifications import helpers as h
from tests.notifications.helpers import FAST_RETRIES, send
from tests.support.tokens import bearer, mint
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

HANG_TIMEOUT = 3.0  # the service's webhook time-out in these tests


@pytest.fixture(scope="module")
async def service(start_service, module_sink, receiver):
    async with start_service(
        build,
        smtp_port=module_sink.port,
        webhook_allowed_hosts=f"127.0.0.1:{receiver.port},hooks.allowed.test",
        webhook_first_retry_seconds=0.3,
        webhook_timeout_seconds=HANG_TIMEOUT,
        webhook_poll_seconds=0.05,
        webhook_per_endpoint=2,
        **FAST_RETRIES,
    ) as svc:
        yield svc


async def organizer_with_event(bus: Any) -> tuple[uuid.UUID, uuid.UUID]:
    organizer = uuid.uuid4()
    created = h.event_created(organizer)
    await send(bus, created)
    return organizer, created.event_id


async def register(
    service: Any,
    owner: uuid.UUID,
    url: str,
    events: list[str],
    role: str = "organizer",
    **more: Any,
) -> Any:
    async with http_client(service) as client:
        return await client.post(
            "/notifications/webhooks",
            json={"url": url, "events": events, **more},
            headers=bearer(mint(owner, role)),
        )


async def registered(service: Any, owner: uuid.UUID, url: str, events: list[str], **more: Any):
    response = await register(service, owner, url, events, **more)
    assert response.status_code == 201, response.text
    return response.json()


async def deliveries(service: Any, owner: uuid.UUID, webhook: str) -> list[dict[str, Any]]:
    async with http_client(service) as client:
        r = await client.get(
            f"/notifications/webhooks/{webhook}/deliveries",
            headers=bearer(mint(owner, "organizer")),
        )
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def organizer_known(service: Any, event_id: uuid.UUID) -> Any:
    async with service.db.engine.connect() as conn:
        return (
            await conn.execute(
                sa.text("SELECT organizer_id FROM event_organizers WHERE event_id = :e"),
                {"e": event_id},
            )
        ).scalar()


async def hooked(
    service: Any, bus: Any, url: str, kinds: list[str]
) -> tuple[uuid.UUID, uuid.UUID, dict[str, Any]]:
    """An organizer with an event, a webhook of theirs to ``url`` for ``kinds``, and the service
    knowing whose event it is: the organizer, the event's id and the webhook."""
    organizer, event_id = await organizer_with_event(bus)
    hook = await registered(service, organizer, url, kinds)
    await eventually(lambda: organizer_known(service, event_id))
    return organizer, event_id, hook


async def handled(service: Any, message_id: uuid.UUID) -> Any:
    async with service.db.engine.connect() as conn:
        return (
            await conn.execute(
                sa.text("SELECT 1 FROM inbox WHERE message_id = :m"), {"m": message_id}
            )
        ).first()


def verified(secret: str, request: Any) -> Any:
    """The payload, if the signature is valid (raises otherwise)."""
    return Webhook(secret).verify(request.body, request.headers)


# --- registration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:127.0.0.1]:8080/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "ftp://hooks.example.com/",
        "http://user:pw@93.184.215.14/",
    ],
)
async def test_registration_refuses_targets_that_are_not_public_http(service, url):
    r = await register(service, uuid.uuid4(), url, ["booking_confirmed"])
    assert r.status_code == 422, r.text
    assert r.json()["type"].endswith("/url-not-allowed")
    assert r.json()["errors"][0]["field"] == "body.url"


async def test_listed_hosts_are_allowed_and_only_on_their_port(service, receiver):
    assert (
        await register(service, uuid.uuid4(), receiver.url("x"), ["booking_confirmed"])
    ).status_code == 201
    other_port = "http://127.0.0.1:1/"
    assert (
        await register(service, uuid.uuid4(), other_port, ["booking_confirmed"])
    ).status_code == 422


async def test_unknown_kinds_and_customers_are_refused(service, receiver):
    r = await register(service, uuid.uuid4(), receiver.url("x"), ["booking_confirmed", "nope"])
    assert r.status_code == 422
    r = await register(service, uuid.uuid4(), receiver.url("x"), ["booking_confirmed"], "customer")
    assert r.status_code == 403
    assert set(WEBHOOK_KINDS) >= {"booking_created", "booking_confirmed", "payment_refunded"}


async def test_the_secret_is_shown_once_and_stored_encrypted(service, receiver):
    owner = uuid.uuid4()
    created = await registered(service, owner, receiver.url("ok-secret"), ["booking_created"])
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(secret) >= len("whsec_") + 32
    async with http_client(service) as client:
        listed = await client.get(
            "/notifications/webhooks", headers=bearer(mint(owner, "organizer"))
        )
    [item] = listed.json()["items"]
    assert item["id"] == created["id"] and "secret" not in item
    async with service.db.engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(webhook_endpoints).where(
                    webhook_endpoints.c.id == uuid.UUID(created["id"])
                )
            )
        ).one()
    stored = json.dumps([str(v) for v in row])
    assert secret not in stored and secret.removeprefix("whsec_") not in stored
    assert NotificationsDeps.of(service).secret_box.open(row.secret_encrypted) == secret


async def test_somebody_elses_webhook_is_not_found(service, receiver):
    owner, intruder = uuid.uuid4(), uuid.uuid4()
    created = await registered(service, owner, receiver.url("ok-mine"), ["booking_created"])
    path = f"/notifications/webhooks/{created['id']}"
    as_intruder = bearer(mint(intruder, "organizer"))
    async with http_client(service) as client:
        assert (await client.get(f"{path}/deliveries", headers=as_intruder)).status_code == 404
        assert (
            await client.post(f"{path}/deliveries/{uuid.uuid4()}/retry", headers=as_intruder)
        ).status_code == 404
        assert (await client.delete(path, headers=as_intruder)).status_code == 404
        mine = bearer(mint(owner, "organizer"))
        assert (await client.delete(path, headers=mine)).status_code == 204
        assert (await client.delete(path, headers=mine)).status_code == 404


# --- delivery -------------------------------------------------------------------------------------


async def test_own_events_messages_arrive_signed_and_logged(service, bus, receiver):
    organizer, event_id, hook = await hooked(
        service, bus, receiver.url("ok-signed"), ["booking_confirmed", "booking_created"]
    )
    msg = h.booking_confirmed(event_id=event_id)
    await send(bus, msg)

    [request] = await eventually(lambda: receiver.at("ok-signed"))
    payload = verified(hook["secret"], request)
    assert payload["type"] == "booking_confirmed"
    assert payload["data"]["booking_id"] == str(msg.booking_id)
    assert payload["data"]["event_id"] == str(event_id)
    assert payload["data"]["amount"] == "40.00"
    with pytest.raises(Exception):  # noqa: B017 - any verification failure
        Webhook("whsec_" + "QUJD" * 8).verify(request.body, request.headers)

    [delivery] = await eventually(
        lambda: deliveries(service, organizer, hook["id"]),
        until=lambda ds: ds and ds[0]["status"] == "delivered",
    )
    assert delivery["webhook_id"] == request.headers["webhook-id"]
    assert [a["status_code"] for a in delivery["attempts"]] == [204]

    # A manual retry sends it again, under the same webhook-id.
    async with http_client(service) as client:
        r = await client.post(
            f"/notifications/webhooks/{hook['id']}/deliveries/{delivery['id']}/retry",
            headers=bearer(mint(organizer, "organizer")),
        )
    assert r.status_code == 202, r.text
    again = await eventually(lambda: receiver.at("ok-signed"), until=lambda rs: len(rs) == 2)
    assert again[1].headers["webhook-id"] == request.headers["webhook-id"]
    verified(hook["secret"], again[1])


async def test_another_organizers_events_are_not_delivered(service, bus, receiver):
    mine, my_event = await organizer_with_event(bus)
    theirs, their_event = await organizer_with_event(bus)
    await registered(service, mine, receiver.url("ok-mine-only"), ["booking_confirmed"])
    await eventually(lambda: organizer_known(service, my_event))
    await eventually(lambda: organizer_known(service, their_event))
    their_booking = h.booking_confirmed(event_id=their_event)
    await send(bus, their_booking)
    last = h.booking_confirmed(event_id=my_event)
    await send(bus, last)
    [request] = await eventually(lambda: receiver.at("ok-mine-only"))
    await eventually(lambda: handled(service, their_booking.message_id))
    assert json.loads(request.body)["data"]["booking_id"] == str(last.booking_id)
    async with service.db.engine.connect() as conn:
        count = (
            await conn.execute(
                sa.select(sa.func.count())
                .where(webhook_deliveries.c.kind == "booking_confirmed")
                .where(webhook_deliveries.c.payload.contains(str(their_event)))
            )
        ).scalar()
    assert count == 0


async def test_a_failed_delivery_is_retried_with_the_same_webhook_id(service, bus, receiver):
    receiver.failures_left["fail-twice"] = 2
    organizer, event_id, hook = await hooked(
        service, bus, receiver.url("fail-twice"), ["booking_created"]
    )
    await send(bus, h.booking_expired(event_id=event_id))  # not subscribed: not sent
    created = h.booking_confirmed(event_id=event_id)
    fields = created.model_dump(exclude={"message_type", "payment_id", "message_id"})
    await send(bus, BookingCreated(**fields, expires_at=created.occurred_at))

    requests = await eventually(
        lambda: receiver.at("fail-twice"), until=lambda rs: len(rs) == 3, timeout=15
    )
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    for r in requests:
        assert verified(hook["secret"], r)["type"] == "booking_created"
    [delivery] = await eventually(
        lambda: deliveries(service, organizer, hook["id"]),
        until=lambda ds: ds and ds[0]["status"] == "delivered",
    )
    attempts = delivery["attempts"]
    assert [a["status_code"] for a in attempts] == [500, 500, 204]
    assert attempts[0]["next_attempt_at"] is not None and attempts[2]["next_attempt_at"] is None


async def test_a_hanging_endpoint_does_not_delay_a_healthy_one(service, bus, receiver):
    organizer, event_id = await organizer_with_event(bus)
    await registered(service, organizer, receiver.url("hang"), ["booking_confirmed"])
    await registered(service, organizer, receiver.url("ok-healthy"), ["booking_confirmed"])
    await eventually(lambda: organizer_known(service, event_id))
    started = time.monotonic()
    for _ in range(6):  # more than the hanging endpoint's share of slots
        await send(bus, h.booking_confirmed(event_id=event_id))
    await eventually(lambda: receiver.at("ok-healthy"), until=lambda rs: len(rs) == 6)
    elapsed = time.monotonic() - started
    assert elapsed < HANG_TIMEOUT - 0.5, elapsed
    # The hanging endpoint never had more than its share in flight at once.
    await eventually(lambda: receiver.at("hang"), until=lambda rs: len(rs) == 2)
    await asyncio.sleep(0.3)
    assert len(receiver.to("hang")) == 2


@contextlib.contextmanager
def resolving(service: Any, answers: dict[str, list[str]]) -> Iterator[None]:
    """The service's webhook targets resolve these hosts to these addresses (looked up at each
    resolution: the test may change them), every other host as before."""
    targets = NotificationsDeps.of(service).webhook_targets
    original = targets.resolve

    async def resolve(host: str, port: int) -> list[str]:
        return answers[host] if host in answers else await original(host, port)

    targets.resolve = resolve
    try:
        yield
    finally:
        targets.resolve = original


async def test_a_host_that_resolves_to_a_private_address_at_delivery_is_refused(
    service, bus, receiver
):
    answers = {"hooks.rebind.test": ["93.184.215.14"]}
    with resolving(service, answers):
        organizer, event_id, hook = await hooked(
            service,
            bus,
            f"http://hooks.rebind.test:{receiver.port}/ok-rebind",
            ["booking_confirmed"],
        )
        answers["hooks.rebind.test"] = ["93.184.215.14", "10.0.0.7"]  # the DNS answer changes
        await send(bus, h.booking_confirmed(event_id=event_id))
        [delivery] = await eventually(
            lambda: deliveries(service, organizer, hook["id"]),
            until=lambda ds: ds and ds[0]["attempts"],
        )
        attempt = delivery["attempts"][0]
        assert attempt["status_code"] is None and "10.0.0.7" in attempt["error"]
        assert delivery["status"] == "pending" and delivery["next_attempt_at"] is not None
        assert receiver.to("ok-rebind") == []


async def test_a_listed_host_is_reached_at_the_address_that_was_checked(service, bus, receiver):
    with resolving(service, {"hooks.allowed.test": ["127.0.0.1"]}):
        _, event_id, hook = await hooked(
            service,
            bus,
            f"http://hooks.allowed.test:{receiver.port}/ok-listed",
            ["booking_confirmed"],
        )
        await send(bus, h.booking_confirmed(event_id=event_id))
        [request] = await eventually(lambda: receiver.at("ok-listed"))
        assert request.headers["Host"] == f"hooks.allowed.test:{receiver.port}"
        verified(hook["secret"], request)


async def test_an_event_scoped_webhook_gets_only_that_event(service, bus, receiver):
    organizer, first = await organizer_with_event(bus)
    second = h.event_created(organizer)
    await send(bus, second)
    await registered(
        service, organizer, receiver.url("ok-scoped"), ["booking_confirmed"], event_id=str(first)
    )
    await eventually(lambda: organizer_known(service, second.event_id))
    await send(bus, h.booking_confirmed(event_id=second.event_id))
    last = h.booking_confirmed(event_id=first)
    await send(bus, last)
    [request] = await eventually(lambda: receiver.at("ok-scoped"))
    assert json.loads(request.body)["data"]["booking_id"] == str(last.booking_id)
    await asyncio.sleep(0.2)
    assert len(receiver.to("ok-scoped")) == 1


async def test_a_delivery_that_keeps_failing_gives_up_and_a_manual_retry_tries_once_more(
    service, bus, receiver
):
    organizer, event_id, hook = await hooked(
        service, bus, receiver.url("fail-always"), ["booking_confirmed"]
    )
    await send(bus, h.booking_confirmed(event_id=event_id))
    [delivery] = await eventually(
        lambda: deliveries(service, organizer, hook["id"]),
        until=lambda ds: ds and ds[0]["attempts"],
    )
    async with service.db.engine.begin() as conn:  # its day is over
        await conn.execute(
            webhook_deliveries.update()
            .where(webhook_deliveries.c.id == uuid.UUID(delivery["id"]))
            .values(give_up_at=sa.func.now())
        )
    [failed] = await eventually(
        lambda: deliveries(service, organizer, hook["id"]),
        until=lambda ds: ds[0]["status"] == "failed",
    )
    tried = len(failed["attempts"])
    assert failed["next_attempt_at"] is None and failed["attempts"][-1]["next_attempt_at"] is None
    assert {a["status_code"] for a in failed["attempts"]} == {500}
    await asyncio.sleep(0.5)
    assert len(receiver.to("fail-always")) == tried  # no more automatic retries

    async with http_client(service) as client:
        r = await client.post(
            f"/notifications/webhooks/{hook['id']}/deliveries/{delivery['id']}/retry",
            headers=bearer(mint(organizer, "organizer")),
        )
    assert r.status_code == 202 and r.json()["status"] == "pending"
    [again] = await eventually(
        lambda: deliveries(service, organizer, hook["id"]),
        until=lambda ds: ds[0]["status"] == "failed" and len(ds[0]["attempts"]) == tried + 1,
    )
    await asyncio.sleep(0.5)
    assert len(receiver.to("fail-always")) == tried + 1
