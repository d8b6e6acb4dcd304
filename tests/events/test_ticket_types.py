"""Ticket types, sales windows and the refund policy of events, against the real RabbitMQ and
PostgreSQL: what the API answers, what it refuses (writing nothing), and what the snapshots on
the bus carry (booking builds its per-type inventory from them)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from apps.events.domain import MAX_CAPACITY
from contracts.messages import EventCreated, EventUpdated, implied_ticket_type_id
from tests.events.test_events_api import (
    bound_queue,
    client,  # noqa: F401  (fixture)
    event_body,
    events,  # noqa: F401  (fixture)
    next_message,
    outbox_and_events_count,
)
from tests.support.tokens import bearer, mint

pytestmark = pytest.mark.integration

STARTS = datetime.now(UTC) + timedelta(days=30)


def typed_body(**over: object) -> dict[str, object]:
    body = event_body(starts_at=STARTS.isoformat(), capacity=300)
    del body["price"]
    body["ticket_types"] = [
        {
            "name": "Early bird",
            "price": "15.00",
            "capacity": 100,
            "sales_end": (STARTS - timedelta(days=10)).isoformat(),
            "max_per_order": 4,
        },
        {"name": "Regular", "price": "25.00", "description": "At the door too"},
        {"name": "VIP", "price": "99.50", "capacity": 20, "max_per_order": 2},
    ]
    body.update(over)
    return body


async def organizers_typed_event(client) -> tuple[str, dict]:
    """A new organizer and their new event of ``typed_body()``: the token and the event."""
    token = mint(uuid.uuid4(), "organizer")
    resp = await client.post("/events/create", json=typed_body(), headers=bearer(token))
    assert resp.status_code == 201, resp.text
    return token, resp.json()


def types_with(index: int, **over: object) -> list[dict[str, object]]:
    types = [dict(t) for t in typed_body()["ticket_types"]]  # type: ignore[union-attr]
    types[index].update(over)
    return types


async def test_event_without_types_has_general_admission_at_its_price(client, amqp):  # noqa: F811
    queue = await bound_queue(amqp, "event_created")
    resp = await client.post(
        "/events/create", json=event_body(), headers=bearer(mint(role="organizer"))
    )
    assert resp.status_code == 201, resp.text
    event = resp.json()
    event_id = uuid.UUID(event["id"])
    assert event["price"] == "20.00"
    assert event["ticket_types"] == [
        {
            "id": str(implied_ticket_type_id(event_id)),
            "name": "General admission",
            "description": "",
            "price": "20.00",
            "currency": "EUR",
            "capacity": None,
            "sales_start": None,
            "sales_end": None,
            "max_per_order": None,
        }
    ]
    assert event["refund_policy"] == {
        "self_service": True,
        "deadline_hours_before_start": 48,
        "fee_percent": "0",
    }
    message = EventCreated.model_validate_json(
        (await next_message(queue, event_id=event["id"])).body
    )
    [only] = message.ticket_types
    assert (only.ticket_type_id, only.name, only.price, only.capacity) == (
        implied_ticket_type_id(event_id),
        "General admission",
        Decimal("20.00"),
        None,
    )
    assert message.refund_policy.self_service and message.refund_policy.fee_percent == 0


async def test_event_with_types_and_policy(client, amqp):  # noqa: F811
    queue = await bound_queue(amqp, "event_created")
    policy = {"self_service": False, "deadline_hours_before_start": 72, "fee_percent": "12.5"}
    resp = await client.post(
        "/events/create",
        json=typed_body(refund_policy=policy),
        headers=bearer(mint(role="organizer")),
    )
    assert resp.status_code == 201, resp.text
    event = resp.json()
    assert event["price"] == "15.00"  # the lowest type price
    assert event["refund_policy"] == policy
    types = event["ticket_types"]
    assert [(t["name"], t["price"], t["capacity"], t["max_per_order"]) for t in types] == [
        ("Early bird", "15.00", 100, 4),
        ("Regular", "25.00", None, None),
        ("VIP", "99.50", 20, 2),
    ]
    assert {t["currency"] for t in types} == {"EUR"}
    assert types[1]["description"] == "At the door too"
    assert datetime.fromisoformat(types[0]["sales_end"]) == STARTS - timedelta(days=10)
    assert len({t["id"] for t in types}) == 3

    # the same as the events service answers, on the bus and on GET
    message = EventCreated.model_validate_json(
        (await next_message(queue, event_id=event["id"])).body
    )
    assert [
        (str(t.ticket_type_id), t.name, f"{t.price:.2f}", t.capacity, t.max_per_order)
        for t in message.ticket_types
    ] == [(t["id"], t["name"], t["price"], t["capacity"], t["max_per_order"]) for t in types]
    assert message.ticket_types[0].sales_end == STARTS - timedelta(days=10)
    assert message.price == Decimal("15.00")
    assert (
        message.refund_policy.self_service,
        message.refund_policy.deadline_hours_before_start,
        message.refund_policy.fee_percent,
    ) == (False, 72, Decimal("12.5"))
    got = (await client.get(f"/events/{event['id']}")).json()
    assert got["ticket_types"] == types and got["refund_policy"] == policy
    listed = (await client.get("/events", params={"organizer_id": event["organizer_id"]})).json()
    assert listed["items"][0]["ticket_types"] == types


LATE = (STARTS + timedelta(hours=1)).isoformat()


@pytest.mark.parametrize(
    ("body", "bad_field"),
    [
        (typed_body(ticket_types=types_with(1, price="-1")), "body.ticket_types.1.price"),
        (typed_body(ticket_types=types_with(1, price="1.001")), "body.ticket_types.1.price"),
        (typed_body(ticket_types=types_with(2, name="  ")), "body.ticket_types.2.name"),
        (typed_body(ticket_types=types_with(2, name="early BIRD")), "body.ticket_types.2.name"),
        (typed_body(ticket_types=types_with(0, sales_end=LATE)), "body.ticket_types.0.sales_end"),
        (
            typed_body(ticket_types=types_with(0, sales_start=STARTS.isoformat())),
            "body.ticket_types.0.sales_start",
        ),
        (
            typed_body(ticket_types=types_with(1, sales_start=LATE)),  # after the default end
            "body.ticket_types.1.sales_start",
        ),
        (
            typed_body(ticket_types=types_with(1, capacity=MAX_CAPACITY + 1)),
            "body.ticket_types.1.capacity",
        ),
        (typed_body(ticket_types=types_with(1, capacity=0)), "body.ticket_types.1.capacity"),
        (
            typed_body(ticket_types=types_with(1, max_per_order=0)),
            "body.ticket_types.1.max_per_order",
        ),
        (
            typed_body(ticket_types=types_with(1, sales_end="2030-01-01T00:00:00")),  # no zone
            "body.ticket_types.1.sales_end",
        ),
        (typed_body(ticket_types=types_with(1, colour="red")), "body.ticket_types.1.colour"),
        (typed_body(ticket_types=[]), "body.ticket_types"),
        (
            typed_body(ticket_types=[{"name": f"T{i}", "price": "1"} for i in range(21)]),
            "body.ticket_types",
        ),
        (typed_body(price="20.00"), "body.price"),  # not the lowest type price
        (typed_body(ticket_types=None), "body.price"),  # no types: a price is needed
        (typed_body(refund_policy={"fee_percent": "100.5"}), "body.refund_policy.fee_percent"),
        (typed_body(refund_policy={"fee_percent": "-1"}), "body.refund_policy.fee_percent"),
        (typed_body(refund_policy={"fee_percent": 1.005}), "body.refund_policy.fee_percent"),
        (
            typed_body(refund_policy={"deadline_hours_before_start": -1}),
            "body.refund_policy.deadline_hours_before_start",
        ),
        (typed_body(refund_policy={"self_service": "maybe"}), "body.refund_policy.self_service"),
    ],
)
async def test_bad_types_or_policy_are_422_naming_the_field(client, events, body, bad_field):  # noqa: F811
    # (outbox rows of other tests may be published meanwhile: count events only)
    events_before = (await outbox_and_events_count(events))[1]
    resp = await client.post("/events/create", json=body, headers=bearer(mint(role="organizer")))
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert {e["field"] for e in resp.json()["errors"]} == {bad_field}
    assert (await outbox_and_events_count(events))[1] == events_before


async def test_price_as_the_lowest_type_price_is_accepted(client):  # noqa: F811
    resp = await client.post(
        "/events/create", json=typed_body(price="15"), headers=bearer(mint(role="organizer"))
    )
    assert resp.status_code == 201, resp.text


async def test_add_and_change_types_publish_new_snapshots(client, amqp):  # noqa: F811
    queue = await bound_queue(amqp, "event_updated")
    token, event = await organizers_typed_event(client)
    url = f"/events/{event['id']}/ticket-types"

    resp = await client.post(
        url, json={"name": "Student", "price": "9.99", "capacity": 50}, headers=bearer(token)
    )
    assert resp.status_code == 201, resp.text
    student = resp.json()
    assert (student["name"], student["price"], student["currency"], student["capacity"]) == (
        "Student",
        "9.99",
        "EUR",
        50,
    )
    added = EventUpdated.model_validate_json((await next_message(queue, event_id=event["id"])).body)
    assert added.version == 2
    assert sorted(added.changed_fields) == ["price", "ticket_types"]  # the new lowest price
    assert added.price == Decimal("9.99")
    assert [t.name for t in added.ticket_types] == ["Early bird", "Regular", "VIP", "Student"]

    # a price change: a new snapshot, for holds made from now on
    regular = event["ticket_types"][1]["id"]
    resp = await client.put(f"{url}/{regular}", json={"price": "30"}, headers=bearer(token))
    assert resp.status_code == 200, resp.text
    assert resp.json()["price"] == "30.00" and resp.json()["name"] == "Regular"
    changed = EventUpdated.model_validate_json(
        (await next_message(queue, event_id=event["id"])).body
    )
    assert (changed.version, changed.changed_fields) == (3, ["ticket_types"])
    assert {str(t.ticket_type_id): t.price for t in changed.ticket_types}[regular] == Decimal("30")

    # other fields, and null back to the defaults
    early = event["ticket_types"][0]["id"]
    resp = await client.put(
        f"{url}/{early}",
        json={"name": "Earliest", "capacity": None, "sales_end": None, "description": "Hurry"},
        headers=bearer(token),
    )
    assert resp.status_code == 200, resp.text
    assert {k: resp.json()[k] for k in ("name", "capacity", "sales_end", "description")} == {
        "name": "Earliest",
        "capacity": None,
        "sales_end": None,
        "description": "Hurry",
    }
    await next_message(queue, event_id=event["id"])

    # nothing changed: no new version, no message
    resp = await client.put(f"{url}/{regular}", json={"price": "30.00"}, headers=bearer(token))
    assert resp.status_code == 200
    got = (await client.get(f"/events/{event['id']}")).json()
    assert got["version"] == 4 and got["price"] == "9.99"
    assert [t["name"] for t in got["ticket_types"]] == ["Earliest", "Regular", "VIP", "Student"]
    with pytest.raises((AssertionError, TimeoutError)):
        await next_message(queue, timeout=1.0, event_id=event["id"])


async def test_bad_type_changes_are_refused_and_change_nothing(client, events):  # noqa: F811
    token, event = await organizers_typed_event(client)
    url = f"/events/{event['id']}/ticket-types"
    vip = event["ticket_types"][2]["id"]
    cases = [
        ("post", url, {"name": "vip", "price": "1"}, 422, "body.name"),
        ("post", url, {"name": "Late", "price": "1", "sales_end": LATE}, 422, "body.sales_end"),
        ("post", url, {"name": "X", "price": "1.001"}, 422, "body.price"),
        ("post", url, {"price": "1"}, 422, "body.name"),
        ("put", f"{url}/{vip}", {"name": "Regular"}, 422, "body.name"),
        ("put", f"{url}/{vip}", {"sales_start": LATE}, 422, "body.sales_start"),
        ("put", f"{url}/{vip}", {"max_per_order": 0}, 422, "body.max_per_order"),
        ("put", f"{url}/{vip}", {"unknown": 1}, 422, "body.unknown"),
    ]
    for method, path, body, status, field in cases:
        resp = await client.request(method, path, json=body, headers=bearer(token))
        assert resp.status_code == status, (body, resp.text)
        assert {e["field"] for e in resp.json()["errors"]} == {field}, body
    missing = [
        f"{url}/{uuid.uuid4()}",
        f"/events/{uuid.uuid4()}/ticket-types/{vip}",
        f"/events/{uuid.uuid4()}/ticket-types",
    ]
    for path in missing:
        method = "post" if path.endswith("ticket-types") else "put"
        resp = await client.request(
            method, path, json={"name": "A", "price": "1"}, headers=bearer(token)
        )
        assert resp.status_code == 404, resp.text
        assert resp.json()["type"].rsplit("/", 1)[1] in ("event-not-found", "ticket-type-not-found")
    assert (
        await client.put(f"{url}/not-a-uuid", json={}, headers=bearer(token))
    ).status_code == 422
    # (the event's outbox row may be published meanwhile: its version says nothing was written)
    got = (await client.get(f"/events/{event['id']}")).json()
    assert got["version"] == 1 and got["ticket_types"] == event["ticket_types"]

    # a cancelled event's types no longer change
    assert (await client.delete(f"/events/{event['id']}", headers=bearer(token))).status_code == 200
    resp = await client.post(url, json={"name": "Z", "price": "1"}, headers=bearer(token))
    assert resp.status_code == 409 and resp.json()["type"].endswith("/event-cancelled")
    resp = await client.put(f"{url}/{vip}", json={"price": "1"}, headers=bearer(token))
    assert resp.status_code == 409 and resp.json()["type"].endswith("/event-cancelled")


async def test_only_the_organizer_or_an_admin_manage_types(client):  # noqa: F811
    owner = mint(uuid.uuid4(), "organizer")
    event = (await client.post("/events/create", json=typed_body(), headers=bearer(owner))).json()
    url = f"/events/{event['id']}/ticket-types"
    vip = f"{url}/{event['ticket_types'][2]['id']}"
    body = {"name": "Press", "price": "0"}
    assert (await client.post(url, json=body)).status_code == 401
    assert (await client.put(vip, json={"price": "1"})).status_code == 401
    customer = bearer(mint(uuid.uuid4(), "customer"))
    other = bearer(mint(uuid.uuid4(), "organizer"))
    for headers in (customer, other):
        # 403 as for the event's other routes (an event is public: nothing to hide)
        resp = await client.post(url, json=body, headers=headers)
        assert resp.status_code == 403, resp.text
        resp = await client.put(vip, json={"price": "1"}, headers=headers)
        assert resp.status_code == 403, resp.text
    assert (await client.get(f"/events/{event['id']}")).json()["version"] == 1
    admin = bearer(mint(uuid.uuid4(), "admin"))
    assert (await client.post(url, json=body, headers=admin)).status_code == 201
    assert (await client.put(vip, json={"price": "1"}, headers=admin)).status_code == 200


async def test_update_changes_the_refund_policy_and_the_price_rules(client, amqp):  # noqa: F811
    queue = await bound_queue(amqp, "event_updated")
    token, event = await organizers_typed_event(client)
    path = f"/events/{event['id']}/update"

    resp = await client.put(
        path, json={"refund_policy": {"fee_percent": "5"}}, headers=bearer(token)
    )
    assert resp.status_code == 200, resp.text
    # a patch: the fields not given keep their values
    assert resp.json()["refund_policy"] == {
        "self_service": True,
        "deadline_hours_before_start": 48,
        "fee_percent": "5",
    }
    message = EventUpdated.model_validate_json(
        (await next_message(queue, event_id=event["id"])).body
    )
    assert message.changed_fields == ["refund_policy"]
    assert message.refund_policy.fee_percent == Decimal("5")
    assert len(message.ticket_types) == 3

    # several types: the event's price is theirs, not settable on its own
    resp = await client.put(path, json={"price": "10"}, headers=bearer(token))
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "body.price"
    # the start cannot move before a type's end of sales
    early_end = STARTS - timedelta(days=10)
    resp = await client.put(
        path,
        json={"starts_at": (early_end - timedelta(hours=1)).isoformat()},
        headers=bearer(token),
    )
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "body.starts_at"
    resp = await client.put(
        path, json={"refund_policy": {"deadline_hours_before_start": -2}}, headers=bearer(token)
    )
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == "body.refund_policy.deadline_hours_before_start"
    assert (await client.get(f"/events/{event['id']}")).json()["version"] == 2


async def test_simultaneous_additions_keep_to_twenty_types_and_unique_names(client):  # noqa: F811
    token = bearer(mint(uuid.uuid4(), "organizer"))
    event = (await client.post("/events/create", json=event_body(), headers=token)).json()
    url = f"/events/{event['id']}/ticket-types"

    async def add(name: str):
        return await client.post(url, json={"name": name, "price": "5"}, headers=token)

    answers = await asyncio.gather(*(add(f"Type {i}") for i in range(25)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [201] * 19 + [409] * 6  # it had General admission already
    assert {r.json()["type"].rsplit("/", 1)[1] for r in answers if r.status_code == 409} == {
        "too-many-ticket-types"
    }
    got = (await client.get(f"/events/{event['id']}")).json()
    assert len(got["ticket_types"]) == 20 and got["version"] == 20

    other = (await client.post("/events/create", json=event_body(), headers=token)).json()
    same = await asyncio.gather(
        *(
            client.post(
                f"/events/{other['id']}/ticket-types",
                json={"name": "Backstage", "price": "50"},
                headers=token,
            )
            for _ in range(10)
        )
    )
    assert sorted(r.status_code for r in same) == [201] + [422] * 9
    got = (await client.get(f"/events/{other['id']}")).json()
    assert [t["name"] for t in got["ticket_types"]] == ["General admission", "Backstage"]
