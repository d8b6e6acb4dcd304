"""The booking HTTP API against the real PostgreSQL and RabbitMQ: holds, limits, idempotency,
ownership, cancellation."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import pytest

from contracts.messages import BookingCancelled, BookingCreated, EventCancelled
from tests.booking.conftest import (
    book_body,
    bound_queue,
    collect,
    event_created,
    feed,
    later,
    rows,
    scalar,
)
from tests.support.tokens import bearer, mint

pytestmark = pytest.mark.integration


async def counts(service, event) -> tuple[int, int, int]:
    """(bookings of the event, held, sold) — straight from the database."""
    n = await scalar(service, "SELECT count(*) FROM bookings WHERE event_id = :e", e=event.event_id)
    ((held, sold),) = await rows(
        service, "SELECT held, sold FROM inventory WHERE event_id = :e", e=event.event_id
    )
    return n, held, sold


async def test_booking_holds_seats_at_the_event_price_and_is_announced(booking, client, amqp):
    queue = await bound_queue(amqp, "booking_created")
    event = event_created(capacity=10, price="19.99", currency="USD")
    await feed(booking, event)
    user = uuid.uuid4()

    resp = await client.post(
        "/booking/create", json=book_body(event, 3), headers=bearer(mint(user))
    )

    assert resp.status_code == 201, resp.text
    b = resp.json()
    assert (b["status"], b["quantity"], b["amount"], b["currency"]) == (
        "pending",
        3,
        "59.97",
        "USD",
    )
    assert b["user_id"] == str(user) and b["event_id"] == str(event.event_id)
    created, expires = (
        datetime.fromisoformat(b["created_at"]),
        datetime.fromisoformat(b["expires_at"]),
    )
    assert expires - created == timedelta(seconds=booking.settings.booking_hold_seconds)
    assert await counts(booking, event) == (1, 3, 0)
    [(key, body)] = await collect(queue, 1)
    msg = BookingCreated.model_validate(body)
    assert key == "booking_created" and msg.booking_id == uuid.UUID(b["id"])
    assert (str(msg.amount), msg.quantity, msg.producer) == ("59.97", 3, "booking")


async def test_200_concurrent_requests_on_10_seats_take_exactly_10(booking, client):
    event = event_created(capacity=10)
    await feed(booking, event)

    async def one() -> int:
        resp = await client.post("/booking/create", json=book_body(event), headers=bearer(mint()))
        return resp.status_code

    statuses = await asyncio.gather(*(one() for _ in range(200)))

    assert statuses.count(201) == 10 and statuses.count(409) == 190
    assert await counts(booking, event) == (10, 10, 0)
    taken = await scalar(
        booking,
        "SELECT sum(quantity) FROM bookings WHERE event_id = :e AND status = 'pending'",
        e=event.event_id,
    )
    assert taken == 10


async def test_concurrent_mixed_quantities_never_exceed_capacity(booking, client):
    event = event_created(capacity=25)
    await feed(booking, event)
    quantities = [1, 2, 3, 4] * 15

    async def one(q: int) -> tuple[int, int]:
        resp = await client.post(
            "/booking/create", json=book_body(event, q), headers=bearer(mint())
        )
        return resp.status_code, q

    results = await asyncio.gather(*(one(q) for q in quantities))
    sold = sum(q for status, q in results if status == 201)
    assert sold <= 25 and {s for s, _ in results} <= {201, 409}
    n, held, _ = await counts(booking, event)
    assert held == sold and n == sum(1 for s, _ in results if s == 201)
    # whatever is left is less than the smallest refused request
    refused = [q for s, q in results if s == 409]
    assert not refused or 25 - held < max(refused)


async def test_refusals_are_problems_and_change_nothing(booking, client):
    event = event_created(capacity=2)
    await feed(booking, event)
    token = bearer(mint())
    cases = [
        ({"event_id": str(uuid.uuid4()), "quantity": 1}, 404, "event-not-found"),
        (book_body(event, 3), 409, "not-enough-seats"),
        (book_body(event, 0), 422, "validation-error"),
        (book_body(event, 11), 422, "validation-error"),  # over MAX_TICKETS_PER_BOOKING (10)
        ({"event_id": "nope", "quantity": 1}, 422, "validation-error"),
        ({"quantity": 1}, 422, "validation-error"),
        ({**book_body(event), "amount": "0.01"}, 422, "validation-error"),
    ]
    for body, status, code in cases:
        resp = await client.post("/booking/create", json=body, headers=token)
        assert resp.status_code == status, (body, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert resp.json()["type"].endswith(code) and resp.json()["status"] == status
    over_cap = await client.post("/booking/create", json=book_body(event, 11), headers=token)
    assert [e["field"] for e in over_cap.json()["errors"]] == ["body.quantity"]
    assert await counts(booking, event) == (0, 0, 0)
    # nothing published about this event (an earlier test's rows may still be on their way)
    assert (
        await scalar(
            booking,
            "SELECT count(*) FROM outbox WHERE payload->>'event_id' = :e",
            e=str(event.event_id),
        )
        == 0
    )
    assert (await client.post("/booking/create", json=book_body(event))).status_code == 401


async def test_sold_out_and_cancelled_events_are_409(booking, client):
    event = event_created(capacity=2)
    await feed(booking, event)
    assert (
        await client.post("/booking/create", json=book_body(event, 2), headers=bearer(mint()))
    ).status_code == 201
    sold_out = await client.post("/booking/create", json=book_body(event), headers=bearer(mint()))
    assert sold_out.status_code == 409 and sold_out.json()["available"] == 0

    other = event_created(capacity=5)
    await feed(booking, other)
    await feed(booking, later(other, EventCancelled, 2))
    resp = await client.post("/booking/create", json=book_body(other), headers=bearer(mint()))
    assert resp.status_code == 409 and resp.json()["type"].endswith("event-cancelled")


async def test_one_user_cannot_hold_more_than_the_per_user_cap(booking, client):
    event = event_created(capacity=100)
    await feed(booking, event)
    user = uuid.uuid4()
    token = bearer(mint(user))
    cap = booking.settings.max_seats_held_per_user  # 20

    # concurrent attempts by one user: the cap holds exactly
    results = await asyncio.gather(
        *(
            client.post("/booking/create", json=book_body(event, 3), headers=token)
            for _ in range(12)
        )
    )
    statuses = [r.status_code for r in results]
    assert statuses.count(201) == cap // 3 and statuses.count(409) == 12 - cap // 3
    assert {r.json()["type"].rsplit("/", 1)[1] for r in results if r.status_code == 409} == {
        "hold-limit-reached"
    }
    held_by_user = await scalar(booking, "SELECT held FROM user_holds WHERE user_id = :u", u=user)
    assert held_by_user == 3 * (cap // 3) == (await counts(booking, event))[1]

    # cancelling one frees room for the user again; other users are not affected
    first = next(r.json() for r in results if r.status_code == 201)
    assert (await client.post(f"/booking/{first['id']}/cancel", headers=token)).status_code == 200
    assert (
        await client.post("/booking/create", json=book_body(event, 3), headers=token)
    ).status_code == 201
    assert (
        await client.post("/booking/create", json=book_body(event, 10), headers=bearer(mint()))
    ).status_code == 201


async def test_idempotency_key_replays_the_first_response(booking, client):
    event = event_created(capacity=10)
    await feed(booking, event)
    token = mint()
    headers = {**bearer(token), "Idempotency-Key": "order-1"}

    first = await client.post("/booking/create", json=book_body(event, 2), headers=headers)
    replay = await client.post("/booking/create", json=book_body(event, 2), headers=headers)
    assert first.status_code == replay.status_code == 201
    assert replay.json() == first.json() and replay.headers["Idempotent-Replayed"] == "true"
    assert await counts(booking, event) == (1, 2, 0)

    other_body = await client.post("/booking/create", json=book_body(event, 3), headers=headers)
    assert other_body.status_code == 422
    assert other_body.json()["type"].endswith("idempotency-key-reused")
    assert await counts(booking, event) == (1, 2, 0)

    # the same key of another user is another key
    theirs = await client.post(
        "/booking/create",
        json=book_body(event, 2),
        headers={**bearer(mint()), "Idempotency-Key": "order-1"},
    )
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]

    # a refusal is replayed too, even once seats are free again
    sold_out = {**bearer(token), "Idempotency-Key": "order-2"}
    refused = await client.post("/booking/create", json=book_body(event, 9), headers=sold_out)
    assert refused.status_code == 409
    await client.post(f"/booking/{first.json()['id']}/cancel", headers=bearer(token))
    again = await client.post("/booking/create", json=book_body(event, 9), headers=sold_out)
    assert (again.status_code, again.json()) == (409, refused.json())


async def test_concurrent_duplicates_make_one_hold(booking, client):
    event = event_created(capacity=50)
    await feed(booking, event)
    headers = {**bearer(mint()), "Idempotency-Key": str(uuid.uuid4())}

    results = await asyncio.gather(
        *(
            client.post("/booking/create", json=book_body(event, 2), headers=headers)
            for _ in range(15)
        )
    )

    assert {r.status_code for r in results} == {201}
    assert len({r.json()["id"] for r in results}) == 1
    assert await counts(booking, event) == (1, 2, 0)


async def test_only_the_owner_or_an_admin_sees_and_cancels(booking, client, amqp):
    queue = await bound_queue(amqp, "booking_cancelled")
    event = event_created(capacity=10)
    await feed(booking, event)
    owner = bearer(mint())
    b = (await client.post("/booking/create", json=book_body(event, 2), headers=owner)).json()
    stranger = bearer(mint(role="organizer"))

    assert (await client.get(f"/booking/{b['id']}", headers=owner)).json() == b
    assert (await client.get(f"/booking/{b['id']}", headers=stranger)).status_code == 404
    assert (await client.post(f"/booking/{b['id']}/cancel", headers=stranger)).status_code == 404
    assert (await client.get(f"/booking/{uuid.uuid4()}", headers=owner)).status_code == 404
    assert (await client.get(f"/booking/{b['id']}")).status_code == 401
    assert (await client.get("/booking", headers=stranger)).json()["items"] == []

    admin = bearer(mint(role="admin"))
    assert (await client.get(f"/booking/{b['id']}", headers=admin)).status_code == 200
    cancelled = await client.post(f"/booking/{b['id']}/cancel", headers=admin)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["cancellation_reason"] == "user_request"
    assert await counts(booking, event) == (1, 0, 0)
    again = await client.post(f"/booking/{b['id']}/cancel", headers=owner)
    assert again.status_code == 409 and again.json()["type"].endswith("booking-not-cancellable")
    assert await counts(booking, event) == (1, 0, 0)
    [(_, body)] = await collect(queue, 1)
    msg = BookingCancelled.model_validate(body)
    assert (msg.reason, msg.refund_due, msg.booking_id) == (
        "user_request",
        False,
        uuid.UUID(b["id"]),
    )


async def test_list_is_own_newest_first_and_paginated(booking, client):
    event = event_created(capacity=20)
    await feed(booking, event)
    user = uuid.uuid4()
    token = bearer(mint(user))
    made = [
        (await client.post("/booking/create", json=book_body(event), headers=token)).json()["id"]
        for _ in range(5)
    ]
    await client.post("/booking/create", json=book_body(event), headers=bearer(mint()))  # not mine

    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/booking", params=params, headers=token)).json()
        seen += [b["id"] for b in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]
    # a customer's user_id filter cannot widen the list
    other = (
        await client.get("/booking", params={"user_id": str(uuid.uuid4())}, headers=token)
    ).json()
    assert [b["id"] for b in other["items"]] == made[::-1]
    admin = bearer(mint(role="admin"))
    theirs = (await client.get("/booking", params={"user_id": str(user)}, headers=admin)).json()
    assert [b["id"] for b in theirs["items"]] == made[::-1]
    everyone = (
        await client.get("/booking", params={"event_id": str(event.event_id)}, headers=admin)
    ).json()
    assert len(everyone["items"]) == 6
    assert (await client.get("/booking", params={"cursor": "!!"}, headers=token)).status_code == 400
    assert (
        await client.get("/booking", params={"status": "nope"}, headers=token)
    ).status_code == 422


async def test_the_waiting_list_is_listed_in_pages(booking, client):
    fan = bearer(mint())
    joined = []
    for _ in range(2):
        event = event_created(capacity=1)
        await feed(booking, event)
        sold = await client.post("/booking/create", json=book_body(event), headers=bearer(mint()))
        assert sold.status_code == 201, sold.text
        entry = await client.post("/booking/waitlist", json=book_body(event), headers=fan)
        assert entry.status_code == 201, entry.text
        joined.append(entry.json()["id"])

    first = (await client.get("/booking/waitlist", params={"limit": 1}, headers=fan)).json()
    assert [e["id"] for e in first["items"]] == joined[:1] and first["next_cursor"]
    params = {"limit": 1, "cursor": first["next_cursor"]}
    second = (await client.get("/booking/waitlist", params=params, headers=fan)).json()
    assert [e["id"] for e in second["items"]] == joined[1:] and second["next_cursor"] is None
    stranger = (await client.get("/booking/waitlist", headers=bearer(mint()))).json()
    assert stranger == {"items": [], "next_cursor": None}
    bad = await client.get("/booking/waitlist", params={"cursor": "!!"}, headers=fan)
    assert bad.status_code == 400 and bad.json()["type"].endswith("invalid-cursor")
