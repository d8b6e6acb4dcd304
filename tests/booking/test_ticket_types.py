"""Ticket types and multi-line orders against the real PostgreSQL: per-type inventory from the
events' snapshots, all-or-nothing holds (each line or none), sales windows, frozen prices,
attendees, and the per-type counters on every seat move."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from apps.booking.domain import general_type_id
from contracts.messages import EventUpdated, TicketType
from tests.booking.conftest import event_created, feed, later, rows, scalar
from tests.support.tokens import bearer, mint

pytestmark = pytest.mark.integration


def types_event(capacity: int = 10, **over: Any) -> tuple[Any, list[TicketType]]:
    """An event with three types: early (3 seats, 10.00), regular (no own cap, 20.00), vip (2
    seats, 50.00, at most 1 per order)."""
    types = [
        TicketType(ticket_type_id=uuid.uuid4(), name="Early", price=Decimal("10.00"), capacity=3),
        TicketType(ticket_type_id=uuid.uuid4(), name="Regular", price=Decimal("20.00")),
        TicketType(
            ticket_type_id=uuid.uuid4(),
            name="VIP",
            price=Decimal("50.00"),
            capacity=2,
            max_per_order=1,
        ),
    ]
    return event_created(capacity=capacity, ticket_types=types, **over), types


async def hold(client: Any, body: dict[str, Any], user: uuid.UUID | None = None) -> Any:
    """``POST /booking/create`` of ``body`` by ``user`` (somebody new if none)."""
    return await client.post("/booking/create", json=body, headers=bearer(mint(user)))


def order(event: Any, *lines: tuple[TicketType, int], **extra: Any) -> dict[str, Any]:
    return {
        "event_id": str(event.event_id),
        "lines": [{"ticket_type_id": str(t.ticket_type_id), "quantity": q} for t, q in lines],
        **extra,
    }


async def type_counts(service: Any, event: Any) -> dict[str, tuple[int, int]]:
    got = await rows(
        service,
        "SELECT name, held, sold FROM type_inventory WHERE event_id = :e",
        e=event.event_id,
    )
    return {name: (held, sold) for name, held, sold in got}


async def event_counts(service: Any, event: Any) -> tuple[int, int]:
    ((held, sold),) = await rows(
        service, "SELECT held, sold FROM inventory WHERE event_id = :e", e=event.event_id
    )
    return held, sold


async def test_a_multi_line_order_holds_every_line_at_frozen_prices(booking, client):
    event, (early, regular, vip) = types_event()
    await feed(booking, event)
    people = [{"name": f"P{i}", "email": f"p{i}@example.com"} for i in range(4)]

    resp = await hold(client, order(event, (early, 2), (regular, 1), (vip, 1), attendees=people))

    assert resp.status_code == 201, resp.text
    b = resp.json()
    assert (b["quantity"], b["amount"], b["discount"], b["voucher_code"]) == (
        4,
        "90.00",
        "0.00",
        None,
    )
    assert [(ln["name"], ln["quantity"], ln["unit_price"], ln["amount"]) for ln in b["lines"]] == [
        ("Early", 2, "10.00", "20.00"),
        ("Regular", 1, "20.00", "20.00"),
        ("VIP", 1, "50.00", "50.00"),
    ]
    # one attendee per ticket, in line order, each of its line's type
    assert [(a["name"], a["ticket_type_id"]) for a in b["attendees"]] == [
        ("P0", str(early.ticket_type_id)),
        ("P1", str(early.ticket_type_id)),
        ("P2", str(regular.ticket_type_id)),
        ("P3", str(vip.ticket_type_id)),
    ]
    assert await event_counts(booking, event) == (4, 0)
    assert await type_counts(booking, event) == {
        "Early": (2, 0),
        "Regular": (1, 0),
        "VIP": (1, 0),
    }
    got = await client.get(f"/booking/{b['id']}", headers=bearer(mint(uuid.UUID(b["user_id"]))))
    assert got.json()["lines"] == b["lines"] and got.json()["attendees"] == b["attendees"]


async def test_one_line_short_holds_nothing(booking, client):
    event, (early, regular, _) = types_event()
    await feed(booking, event)

    resp = await hold(client, order(event, (regular, 2), (early, 4)))

    assert resp.status_code == 409, resp.text
    p = resp.json()
    assert p["type"].endswith("/not-enough-seats")
    assert p["ticket_type_id"] == str(early.ticket_type_id) and p["available"] == 3
    assert await event_counts(booking, event) == (0, 0)
    assert await type_counts(booking, event) == {"Early": (0, 0), "Regular": (0, 0), "VIP": (0, 0)}
    assert (
        await scalar(booking, "SELECT count(*) FROM bookings WHERE event_id = :e", e=event.event_id)
        == 0
    )


async def test_the_event_quota_caps_all_types_together(booking, client):
    event, (early, regular, _) = types_event(capacity=4)
    await feed(booking, event)
    ok = await hold(client, order(event, (regular, 3)))
    assert ok.status_code == 201
    # Early has 3 seats of its own, but the event has only 1 left
    resp = await hold(client, order(event, (early, 2)))
    assert resp.status_code == 409 and resp.json()["type"].endswith("/not-enough-seats")
    assert await type_counts(booking, event) == {"Early": (0, 0), "Regular": (3, 0), "VIP": (0, 0)}


async def test_a_sold_out_type_does_not_make_the_event_look_sold_out(booking, client):
    event, (early, regular, _) = types_event()
    await feed(booking, event)
    for _ in range(2):  # the second one is refused: Early has 3 seats
        await hold(client, order(event, (early, 2)))
    # the refusal was remembered for the event's quota only: Regular still sells
    resp = await hold(client, order(event, (regular, 1)))
    assert resp.status_code == 201, resp.text


@pytest.mark.parametrize(
    "body, status, where",
    [
        (lambda e, t: {"event_id": str(e.event_id), "quantity": 1}, 422, "body.quantity"),
        (
            lambda e, t: {
                "event_id": str(e.event_id),
                "lines": [{"ticket_type_id": str(uuid.uuid4()), "quantity": 1}],
            },
            422,
            "body.lines.0.ticket_type_id",
        ),
        (lambda e, t: order(e, (t[2], 2)), 422, "body.lines.0.quantity"),  # VIP: 1 per order
        (lambda e, t: order(e, (t[1], 1), (t[1], 1)), 422, "body.lines.1.ticket_type_id"),
        (
            lambda e, t: order(e, (t[1], 2), attendees=[{"name": "only one"}]),
            422,
            "body.attendees",
        ),
        (lambda e, t: order(e, (t[1], 1), voucher_code="SAVE10"), 422, "body.voucher_code"),
    ],
)
async def test_orders_that_cannot_be_taken_are_422_and_change_nothing(
    booking, client, body, status, where
):
    event, types = types_event()
    await feed(booking, event)
    resp = await hold(client, body(event, types))
    assert resp.status_code == status, resp.text
    assert where in [e["field"] for e in resp.json()["errors"]]
    assert await event_counts(booking, event) == (0, 0)


async def test_sales_windows_and_the_start_of_the_event(booking, client):
    now = datetime.now(UTC)
    soon = TicketType(
        ticket_type_id=uuid.uuid4(),
        name="Later",
        price=Decimal("5.00"),
        sales_start=now + timedelta(days=1),
    )
    over = TicketType(
        ticket_type_id=uuid.uuid4(),
        name="Over",
        price=Decimal("5.00"),
        sales_end=now - timedelta(minutes=1),
    )
    event = event_created(ticket_types=[soon, over])
    started = event_created(starts_at=now - timedelta(minutes=5))
    await feed(booking, event)
    await feed(booking, started)

    not_yet = await hold(client, order(event, (soon, 1)))
    ended = await hold(client, order(event, (over, 1)))
    too_late = await hold(client, {"event_id": str(started.event_id), "quantity": 1})

    assert not_yet.status_code == 409 and not_yet.json()["type"].endswith("/sales-not-started")
    assert ended.status_code == 409 and ended.json()["type"].endswith("/sales-ended")
    assert too_late.status_code == 409 and too_late.json()["type"].endswith("/sales-ended")
    assert await event_counts(booking, started) == (0, 0)


async def test_an_event_without_types_has_one_general_admission_type(booking, client):
    event = event_created(capacity=5, price="12.50")  # an old snapshot: ticket_types == []
    await feed(booking, event)
    resp = await hold(client, {"event_id": str(event.event_id), "quantity": 2})
    assert resp.status_code == 201, resp.text
    (line,) = resp.json()["lines"]
    assert line["ticket_type_id"] == str(general_type_id(event.event_id))
    assert (line["name"], line["unit_price"], line["amount"]) == (
        "General admission",
        "12.50",
        "25.00",
    )


async def test_a_price_change_never_touches_existing_bookings(booking, client):
    event, (early, regular, vip) = types_event()
    await feed(booking, event)
    user = uuid.uuid4()
    first = (await hold(client, order(event, (regular, 2)), user)).json()
    dearer = regular.model_copy(update={"price": Decimal("35.00")})
    await feed(booking, later(event, EventUpdated, 2, ticket_types=[early, dearer, vip]))

    again = (await client.get(f"/booking/{first['id']}", headers=bearer(mint(user)))).json()
    second = (await hold(client, order(event, (regular, 1)))).json()

    assert (again["amount"], again["lines"][0]["unit_price"]) == ("40.00", "20.00")
    assert (second["amount"], second["lines"][0]["unit_price"]) == ("35.00", "35.00")


async def test_cancelling_frees_the_type_seats_once(booking, client):
    """Hi.Events #466 (a cancelled order frees its seats) and #218 (never twice)."""
    event, (early, regular, _) = types_event()
    await feed(booking, event)
    user = uuid.uuid4()
    b = (await hold(client, order(event, (early, 3), (regular, 1)), user)).json()
    assert await type_counts(booking, event) == {"Early": (3, 0), "Regular": (1, 0), "VIP": (0, 0)}

    first, second = await asyncio.gather(
        client.post(f"/booking/{b['id']}/cancel", headers=bearer(mint(user))),
        client.post(f"/booking/{b['id']}/cancel", headers=bearer(mint(user))),
    )
    third = await client.post(f"/booking/{b['id']}/cancel", headers=bearer(mint(user)))

    assert sorted([first.status_code, second.status_code]) == [200, 409]
    assert third.status_code == 409
    assert await event_counts(booking, event) == (0, 0)
    assert await type_counts(booking, event) == {"Early": (0, 0), "Regular": (0, 0), "VIP": (0, 0)}
    # and the freed Early seats sell again
    resp = await hold(client, order(event, (early, 3)))
    assert resp.status_code == 201


async def test_a_buyers_own_lapsed_hold_does_not_make_the_type_look_sold_out(short_holds):
    """Holds lapse at once here and the sweeper is off: the lapsed hold still counts as held
    until it is expired, which the reservation does itself before refusing."""
    from tests.conftest import http_client

    event, (early, _, _) = types_event()
    await feed(short_holds, event)
    user = uuid.uuid4()
    async with http_client(short_holds) as c:
        first = await hold(c, order(event, (early, 3)), user)
        assert first.status_code == 201
        again = await hold(c, order(event, (early, 3)), user)
    assert again.status_code == 201, again.text
    statuses = dict(
        await rows(
            short_holds,
            "SELECT id::text, status FROM bookings WHERE event_id = :e",
            e=event.event_id,
        )
    )
    assert statuses[first.json()["id"]] == "expired"
    assert await type_counts(short_holds, event) == {
        "Early": (3, 0),
        "Regular": (0, 0),
        "VIP": (0, 0),
    }


async def test_simultaneous_multi_line_orders_never_oversell_nor_hold_part_of_an_order(
    booking, client
):
    """120 orders of 1-3 lines at once on 3 + 2 type seats and a quota of 8: never more than
    a type's or the event's seats, and every booking has all its lines (none half held)."""
    event, types = types_event(capacity=8)
    await feed(booking, event)
    rng = random.Random(7)

    def random_order() -> list[tuple[TicketType, int]]:
        chosen = rng.sample(types, rng.randint(1, 3))
        return [(t, 1 if t.name == "VIP" else rng.randint(1, 2)) for t in chosen]

    orders = [random_order() for _ in range(120)]

    async def one(lines: list[tuple[TicketType, int]]) -> int:
        resp = await hold(client, order(event, *lines))
        return resp.status_code

    statuses = await asyncio.gather(*(one(o) for o in orders))

    assert set(statuses) <= {201, 409} and 201 in statuses
    held, sold = await event_counts(booking, event)
    counts = await type_counts(booking, event)
    assert held + sold <= 8
    assert counts["Early"][0] <= 3 and counts["VIP"][0] <= 2
    # what the counters say is exactly the seats of the bookings' lines
    per_type = dict(
        await rows(
            booking,
            "SELECT t.name, coalesce(sum(l.quantity), 0) FROM type_inventory t "
            "LEFT JOIN booking_lines l ON l.ticket_type_id = t.ticket_type_id "
            "WHERE t.event_id = :e GROUP BY t.name",
            e=event.event_id,
        )
    )
    assert {k: v[0] for k, v in counts.items()} == per_type
    assert held == sum(per_type.values())
    # every booking is whole: its lines are exactly what one order asked for
    accepted = sorted(
        sorted((t.name, q) for t, q in o) for o, s in zip(orders, statuses) if s == 201
    )
    stored = await rows(
        booking,
        "SELECT b.id, l.name, l.quantity FROM bookings b JOIN booking_lines l ON l.booking_id = b.id "
        "WHERE b.event_id = :e",
        e=event.event_id,
    )
    by_booking: dict[Any, list[tuple[str, int]]] = {}
    for bid, name, q in stored:
        by_booking.setdefault(bid, []).append((name, q))
    assert sorted(sorted(v) for v in by_booking.values()) == accepted
