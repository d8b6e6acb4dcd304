"""Vouchers at the events service, against the real RabbitMQ and PostgreSQL: created and changed
by the event's organizer (or an admin), refused when invalid (writing nothing), announced on the
bus for booking, listed with their uses as booking's messages report them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from contracts.messages import BookingCancelled, BookingCreated, BookingExpired, VoucherCreated
from tests.events.test_events_api import (
    bound_queue,
    client,  # noqa: F401  (fixture)
    event_body,
    events,  # noqa: F401  (fixture)
    next_message,
)
from tests.support.db import scalar
from tests.support.tokens import bearer, mint

pytestmark = pytest.mark.integration


async def organizers_event(client: Any) -> tuple[str, dict[str, Any]]:
    token = mint(uuid.uuid4(), "organizer")
    resp = await client.post("/events/create", json=event_body(), headers=bearer(token))
    assert resp.status_code == 201, resp.text
    return token, resp.json()


async def organizers_voucher(
    client: Any, code: str, *, max_uses: int
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """An organizer's event with one 10 % voucher of it: the token, the event, the voucher."""
    token, event = await organizers_event(client)
    voucher = await client.post(
        f"/events/{event['id']}/vouchers",
        json={"code": code, "max_uses": max_uses, "percent_off": "10"},
        headers=bearer(token),
    )
    return token, event, voucher.json()


async def test_a_voucher_is_created_listed_and_announced(client, amqp):
    queue = await bound_queue(amqp, "voucher_created")
    token, event = await organizers_event(client)
    type_id = event["ticket_types"][0]["id"]
    until = (datetime.now(UTC) + timedelta(days=3)).isoformat()

    resp = await client.post(
        f"/events/{event['id']}/vouchers",
        json={
            "code": "early10",
            "percent_off": "10",
            "max_uses": 5,
            "valid_until": until,
            "ticket_type_ids": [type_id],
        },
        headers=bearer(token),
    )

    assert resp.status_code == 201, resp.text
    v = resp.json()
    assert (v["code"], v["percent_off"], v["amount_off"], v["max_uses"], v["used"]) == (
        "EARLY10",
        "10",
        None,
        5,
        0,
    )
    msg = VoucherCreated.model_validate_json((await next_message(queue, event_id=event["id"])).body)
    assert (msg.voucher_id, msg.code, msg.percent_off, msg.ticket_type_ids) == (
        uuid.UUID(v["id"]),
        "EARLY10",
        Decimal("10"),
        [uuid.UUID(type_id)],
    )
    listed = await client.get(f"/events/{event['id']}/vouchers", headers=bearer(token))
    assert listed.status_code == 200
    assert [x["id"] for x in listed.json()["items"]] == [v["id"]]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"code": "X", "max_uses": 1}, 422, "body.percent_off"),  # neither
        (
            {"code": "X", "max_uses": 1, "percent_off": "5", "amount_off": "1.00"},
            422,
            "body.percent_off",
        ),  # both
        ({"code": "X", "max_uses": 0, "percent_off": "5"}, 422, "body.max_uses"),
        ({"code": "X", "max_uses": 1, "percent_off": "101"}, 422, "body.percent_off"),
        ({"code": "X", "max_uses": 1, "amount_off": "-1.00"}, 422, "body.amount_off"),
        ({"code": "no spaces", "max_uses": 1, "percent_off": "5"}, 422, "body.code"),
        (
            {
                "code": "X",
                "max_uses": 1,
                "percent_off": "5",
                "ticket_type_ids": [str(uuid.uuid4())],
            },
            422,
            "body.ticket_type_ids.0",
        ),
        (
            {"code": "X", "max_uses": 1, "percent_off": "5", "valid_until": "2020-01-01T00:00:00Z"},
            422,
            "body.valid_until",
        ),
    ],
)
async def test_invalid_vouchers_are_refused(client, events, body, status, field):
    token, event = await organizers_event(client)
    resp = await client.post(f"/events/{event['id']}/vouchers", json=body, headers=bearer(token))
    assert resp.status_code == status, resp.text
    assert field in {e["field"] for e in resp.json()["errors"]}, resp.json()
    assert (
        await scalar(
            events, "SELECT count(*) FROM vouchers WHERE event_id = :e", e=uuid.UUID(event["id"])
        )
        == 0
    )


async def test_codes_are_unique_per_event_and_only_the_organizer_manages_them(client):
    token, event = await organizers_event(client)
    url = f"/events/{event['id']}/vouchers"
    body = {"code": "SAME", "max_uses": 1, "amount_off": "5.00"}
    assert (await client.post(url, json=body, headers=bearer(token))).status_code == 201
    taken = await client.post(url, json={**body, "code": "same"}, headers=bearer(token))
    assert taken.status_code == 409
    assert taken.json()["type"].endswith("/voucher-code-taken")
    other_token, other = await organizers_event(client)
    ok = await client.post(
        f"/events/{other['id']}/vouchers", json=body, headers=bearer(other_token)
    )
    assert ok.status_code == 201

    stranger = bearer(mint(uuid.uuid4(), "organizer"))
    assert (
        await client.post(url, json={**body, "code": "MINE"}, headers=stranger)
    ).status_code == 403
    assert (await client.get(url, headers=stranger)).status_code == 403
    customer = bearer(mint(uuid.uuid4(), "customer"))
    assert (
        await client.post(url, json={**body, "code": "MINE"}, headers=customer)
    ).status_code == 403
    admin = bearer(mint(uuid.uuid4(), "admin"))
    assert (await client.get(url, headers=admin)).status_code == 200


async def test_a_change_is_announced_with_a_new_version(client, amqp):
    queue = await bound_queue(amqp, "voucher_updated")
    token, event, v = await organizers_voucher(client, "C", max_uses=2)
    url = f"/events/{event['id']}/vouchers"

    resp = await client.put(
        f"{url}/{v['id']}", json={"amount_off": "3.00", "max_uses": 4}, headers=bearer(token)
    )

    assert resp.status_code == 200, resp.text
    changed = resp.json()
    assert (
        changed["percent_off"],
        changed["amount_off"],
        changed["max_uses"],
        changed["version"],
    ) == (None, "3.00", 4, 2)
    body = json.loads((await next_message(queue, event_id=event["id"])).body)
    assert (body["amount_off"], body["percent_off"], body["version"]) == ("3.00", None, 2)


async def test_used_follows_bookings_messages_once_each(client, events):
    token, event, v = await organizers_voucher(client, "USE", max_uses=5)
    url = f"/events/{event['id']}/vouchers"
    common: dict[str, Any] = {
        "event_id": event["id"],
        "user_id": str(uuid.uuid4()),
        "quantity": 1,
        "amount": "18.00",
        "currency": "EUR",
        "voucher_code": "USE",
        "discount": "2.00",
        "producer": "booking",
    }
    expires = datetime.now(UTC) + timedelta(minutes=10)
    first = BookingCreated(**common, booking_id=uuid.uuid4(), expires_at=expires, voucher_use=1)
    second = BookingCreated(**common, booking_id=uuid.uuid4(), expires_at=expires, voucher_use=1)
    for msg in (first, second, first):  # a duplicate delivery counts once
        await events.subscribers["booking_created"](msg)
    await events.subscribers["booking_expired"](
        BookingExpired(**common, booking_id=first.booking_id, voucher_use=-1)
    )
    # a paid booking's cancellation keeps the use (voucher_use 0): nothing changes
    await events.subscribers["booking_cancelled"](
        BookingCancelled(
            **common, booking_id=second.booking_id, reason="user_request", refund_due=True
        )
    )

    listed = (await client.get(url, headers=bearer(token))).json()["items"]
    assert [(x["id"], x["used"]) for x in listed] == [(v["id"], 1)]
