"""The events service end to end against the real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from apps.events.bootstrap import build
from contracts.messages import EventCancelled, EventCreated, EventUpdated
from contracts.topology import DOMAIN_EXCHANGE
from tests.conftest import http_client, service_fixture
from tests.support.api_bodies import event_body
from tests.support.tokens import bearer, mint

pytestmark = pytest.mark.integration


events = service_fixture(build)


@pytest.fixture
async def client(events):
    async with http_client(events) as c:
        yield c


async def bound_queue(amqp, routing_key: str):
    """A private queue bound like a consumer's would be, to see what the service publishes."""
    exchange = await amqp.declare_exchange(DOMAIN_EXCHANGE.name, type="topic", durable=True)
    queue = await amqp.declare_queue(f"test.{uuid.uuid4().hex[:8]}", exclusive=True)
    await queue.bind(exchange, routing_key=routing_key)
    return queue


async def next_message(queue, timeout: float = 10.0, event_id: str | None = None):
    """The next message on ``queue`` (about ``event_id`` if given: other tests' events may still
    be in flight from the shared outbox)."""
    async with queue.iterator(timeout=timeout) as it:
        async for message in it:
            await message.ack()
            if event_id is None or json.loads(message.body)["event_id"] == event_id:
                return message
    raise AssertionError("no message")


async def test_created_event_arrives_as_typed_message(client, amqp):
    queue = await bound_queue(amqp, "event_created")
    organizer = uuid.uuid4()
    resp = await client.post(
        "/events/create", json=event_body(), headers=bearer(mint(organizer, "organizer"))
    )
    assert resp.status_code == 201, resp.text
    event = resp.json()

    raw = await next_message(queue, event_id=event["id"])
    message = EventCreated.model_validate_json(raw.body)
    assert message.event_id == uuid.UUID(event["id"])
    assert message.organizer_id == organizer
    assert str(message.price) == "20.00" and message.currency == "EUR"
    assert message.producer == "events"
    assert raw.delivery_mode == 2  # persistent
    assert raw.message_id == str(message.message_id)
    assert raw.type == "event_created"


async def test_update_and_cancel_publish_snapshots_with_increasing_versions(client, amqp):
    updated_q = await bound_queue(amqp, "event_updated")
    cancelled_q = await bound_queue(amqp, "event_cancelled")
    token = mint(uuid.uuid4(), "organizer")
    event = (await client.post("/events/create", json=event_body(), headers=bearer(token))).json()

    resp = await client.put(
        f"/events/{event['id']}/update",
        json={"capacity": 150, "price": "25"},
        headers=bearer(token),
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["capacity"] == 150 and resp.json()["price"] == "25.00"
    upd = EventUpdated.model_validate_json(
        (await next_message(updated_q, event_id=event["id"])).body
    )
    # the price is its only ticket type's, so that type changed too
    assert (upd.version, upd.capacity, sorted(upd.changed_fields)) == (
        2,
        150,
        ["capacity", "price", "ticket_types"],
    )
    assert [t.price for t in upd.ticket_types] == [Decimal("25.00")]

    resp = await client.delete(f"/events/{event['id']}", headers=bearer(token))
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    cancelled = EventCancelled.model_validate_json(
        (await next_message(cancelled_q, event_id=event["id"])).body
    )
    assert cancelled.version == 3 and cancelled.status == "cancelled"

    # a cancelled event can no longer change
    resp = await client.put(
        f"/events/{event['id']}/update", json={"title": "x"}, headers=bearer(token)
    )
    assert resp.status_code == 409
    assert resp.headers["content-type"].startswith("application/problem+json")


async def outbox_and_events_count(service) -> tuple[int, int]:
    async with service.db.engine.connect() as conn:
        n_out = (await conn.execute(sa.text("SELECT count(*) FROM outbox"))).scalar_one()
        n_ev = (await conn.execute(sa.text("SELECT count(*) FROM events"))).scalar_one()
    return n_out, n_ev


@pytest.mark.parametrize(
    ("body", "status", "bad_fields"),
    [
        (event_body(title="  "), 422, {"body.title"}),
        (event_body(capacity=0), 422, {"body.capacity"}),
        (event_body(capacity=10**7), 422, {"body.capacity"}),
        (event_body(price="-1"), 422, {"body.price"}),
        (event_body(price="1.001"), 422, {"body.price"}),
        (event_body(price=12.5), 201, set()),  # a JSON number is accepted as a decimal
        (event_body(currency="EUX"), 422, {"body.currency"}),
        (event_body(starts_at="2001-01-01T00:00:00Z"), 422, {"body.starts_at"}),
        (event_body(starts_at="2030-01-01T00:00:00"), 422, {"body.starts_at"}),  # no time zone
        (event_body(ends_at="2000-01-01T00:00:00Z"), 422, {"body.ends_at"}),
        (event_body(unknown="x"), 422, {"body.unknown"}),
        # past the calendar's end once in UTC: a 422, not a database error
        (event_body(starts_at="9999-12-31T23:00:00-05:00"), 422, {"body.starts_at"}),
        (
            event_body(
                ticket_types=[
                    {"name": "Early", "price": "5.00", "sales_start": "0001-01-01T00:00:00+05:00"}
                ]
            ),
            422,
            {"body.ticket_types.0.sales_start"},
        ),
    ],
)
async def test_bad_event_gets_problem_details_and_writes_nothing(
    client, events, body, status, bad_fields
):
    before = await outbox_and_events_count(events)
    resp = await client.post("/events/create", json=body, headers=bearer(mint(role="organizer")))
    assert resp.status_code == status, resp.text
    if status == 201:
        return
    problem = resp.json()
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert problem["status"] == status and problem["title"] and problem["type"]
    assert {e["field"] for e in problem["errors"]} == bad_fields
    assert await outbox_and_events_count(events) == before


async def test_malformed_json_is_400(client, events):
    before = await outbox_and_events_count(events)
    resp = await client.post(
        "/events/create",
        content=b'{"title": ',
        headers={**bearer(mint(role="organizer")), "content-type": "application/json"},
    )
    assert resp.status_code == 400
    assert resp.json()["type"].endswith("malformed-json")
    assert await outbox_and_events_count(events) == before


async def test_roles_and_ownership(client):
    body = event_body()
    assert (await client.post("/events/create", json=body)).status_code == 401
    customer = await client.post("/events/create", json=body, headers=bearer(mint(role="customer")))
    assert customer.status_code == 403
    owner = mint(uuid.uuid4(), "organizer")
    event = (await client.post("/events/create", json=body, headers=bearer(owner))).json()
    other = mint(uuid.uuid4(), "organizer")
    assert (
        await client.put(
            f"/events/{event['id']}/update", json={"title": "Mine"}, headers=bearer(other)
        )
    ).status_code == 403
    assert (await client.delete(f"/events/{event['id']}", headers=bearer(other))).status_code == 403
    admin = mint(uuid.uuid4(), "admin")
    resp = await client.put(
        f"/events/{event['id']}/update", json={"title": "Admin's"}, headers=bearer(admin)
    )
    assert resp.status_code == 200 and resp.json()["title"] == "Admin's"
    assert (await client.get(f"/events/{uuid.uuid4()}")).status_code == 404
    assert (await client.get("/events/not-a-uuid")).status_code == 422


async def test_list_is_paginated_with_cursor(client):
    organizer = uuid.uuid4()
    token = mint(organizer, "organizer")
    base = datetime.now(UTC) + timedelta(days=400)
    created = []
    for i in range(5):
        resp = await client.post(
            "/events/create",
            json=event_body(starts_at=(base + timedelta(hours=i)).isoformat()),
            headers=bearer(token),
        )
        created.append(resp.json()["id"])
    seen, cursor = [], None
    while True:
        params = {"limit": 2, "organizer_id": str(organizer)}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/events", params=params)).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == created
    capped = await client.get("/events", params={"limit": 1000, "organizer_id": str(organizer)})
    assert capped.status_code == 200 and [e["id"] for e in capped.json()["items"]] == created
    assert (await client.get("/events", params={"limit": 0})).status_code == 422
    assert (await client.get("/events", params={"cursor": "!!"})).status_code == 400


async def test_health_ready_and_docs(client):
    assert (await client.get("/health")).json()["status"] == "ok"
    ready = await client.get("/ready")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "broker": "ok"}
    spec = json.loads((await client.get("/asyncapi.json")).text)
    assert spec["channels"]["event_created"]["address"] == "event_created"
    assert "events_send_event_created" in spec["operations"]
    page = (await client.get("/asyncapi")).text
    assert "/_assets/@asyncapi/react-component" in page and "unpkg.com" not in page
    assert "/_assets/swagger-ui-dist" in (await client.get("/docs")).text


async def test_metrics_expose_http_and_outbox_figures(client):
    await client.get("/events")
    text = (await client.get("/metrics")).text
    assert 'http_requests_total{method="GET",route="/events",service="events",status="200"}' in text
    assert "outbox_backlog_messages" in text and "faststream_received_messages_total" in text


async def test_committed_messages_are_counted_as_business_outcomes(client):
    token = mint(uuid.uuid4(), "organizer")
    before = (await client.get("/metrics")).text
    assert (
        await client.post("/events/create", json=event_body(), headers=bearer(token))
    ).status_code == 201
    after = (await client.get("/metrics")).text

    def created(text: str) -> float:
        for line in text.splitlines():
            if line.startswith(
                'business_events_total{name="events",outcome="created",service="events"}'
            ):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    assert created(after) == created(before) + 1
