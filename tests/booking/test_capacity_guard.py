"""Capacity can never drop below the seats held or sold: the events service asks booking
(over real HTTP) before committing a decrease, and the organizer gets a 409 from
``PUT /events/{id}/update``."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from apps.booking.bootstrap import build as build_booking
from apps.events.bootstrap import build as build_events
from tests.booking.conftest import rows
from tests.conftest import http_client
from tests.support.api_bodies import event_body
from tests.support.serving import serve
from tests.support.tokens import bearer, mint
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def outbox_published(service) -> None:
    """Leave no unpublished rows behind for the next test using the events database."""
    await eventually(
        lambda: rows(service, "SELECT count(*) FROM outbox"), until=lambda r: r == [(0,)]
    )


async def ten_seats(events_api: Any, organizer: dict[str, str]) -> dict[str, Any]:
    """An event of 10 seats, created by ``organizer`` through the events API."""
    resp = await events_api.post("/events/create", json=event_body(capacity=10), headers=organizer)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def inventory(booking, event_id) -> list:
    return await rows(
        booking, "SELECT capacity, held, sold FROM inventory WHERE event_id = :e", e=event_id
    )


@contextlib.asynccontextmanager
async def booking_behind_events(start_service) -> AsyncIterator[tuple[Any, Any, Any, Any]]:
    """Booking served over HTTP and the events service asking it: booking, events, and an API
    client of each (events', booking's)."""
    async with (
        start_service(build_booking, booking_sweep_interval_seconds=0) as booking,
        serve(booking.api, lifespan="off") as booking_url,
        start_service(build_events, booking_url=booking_url) as events,
        http_client(events) as events_api,
        http_client(booking) as booking_api,
    ):
        yield booking, events, events_api, booking_api


async def test_capacity_below_held_and_sold_is_refused_where_it_is_asked(start_service):
    async with booking_behind_events(start_service) as (booking, events, events_api, booking_api):
        organizer = bearer(mint(uuid.uuid4(), "organizer"))
        event = await ten_seats(events_api, organizer)
        # booking learns the event from the bus
        await eventually(lambda: inventory(booking, event["id"]), until=lambda r: r == [(10, 0, 0)])
        for _ in range(2):
            resp = await booking_api.post(
                "/booking/create",
                json={"event_id": event["id"], "quantity": 3},
                headers=bearer(mint()),
            )
            assert resp.status_code == 201

        refused = await events_api.put(
            f"/events/{event['id']}/update", json={"capacity": 5}, headers=organizer
        )
        assert refused.status_code == 409, refused.text
        assert refused.json()["type"].endswith("capacity-below-booked")
        assert "6 seats" in refused.json()["detail"]
        current = (await events_api.get(f"/events/{event['id']}")).json()
        assert (current["capacity"], current["version"]) == (10, 1)
        assert await inventory(booking, event["id"]) == [(10, 6, 0)]

        ok = await events_api.put(
            f"/events/{event['id']}/update", json={"capacity": 6}, headers=organizer
        )
        assert ok.status_code == 200 and ok.json()["capacity"] == 6
        # applied at booking at once: no seat can be sold beyond the new capacity meanwhile
        assert await inventory(booking, event["id"]) == [(6, 6, 0)]
        sold_out = await booking_api.post(
            "/booking/create", json={"event_id": event["id"], "quantity": 1}, headers=bearer(mint())
        )
        assert sold_out.status_code == 409

        # increases need no check; the snapshot brings them
        more = await events_api.put(
            f"/events/{event['id']}/update", json={"capacity": 20}, headers=organizer
        )
        assert more.status_code == 200
        await eventually(lambda: inventory(booking, event["id"]), until=lambda r: r == [(20, 6, 0)])

        # an event booking has not heard of yet is accepted
        body_unknown = await booking_api.put(
            f"/internal/events/{uuid.uuid4()}/capacity", json={"capacity": 1}, headers=organizer
        )
        assert body_unknown.status_code == 404
        # the internal route checks who asks: another organizer cannot shrink this event
        stranger = await booking_api.put(
            f"/internal/events/{event['id']}/capacity",
            json={"capacity": 6},
            headers=bearer(mint(uuid.uuid4(), "organizer")),
        )
        assert stranger.status_code == 404
        customer = await booking_api.put(
            f"/internal/events/{event['id']}/capacity", json={"capacity": 6}, headers=bearer(mint())
        )
        assert customer.status_code == 403
        await outbox_published(events)


async def test_booking_unreachable_makes_a_decrease_503_and_changes_nothing(start_service):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{closed.getsockname()[1]}"  # bound, never listening
        async with (
            start_service(
                build_events, booking_url=dead_url, booking_timeout_seconds=0.5
            ) as events,
            http_client(events) as api,
        ):
            organizer = bearer(mint(uuid.uuid4(), "organizer"))
            event = await ten_seats(api, organizer)
            resp = await api.put(
                f"/events/{event['id']}/update", json={"capacity": 5}, headers=organizer
            )
            assert resp.status_code == 503 and resp.json()["type"].endswith("booking-unavailable")
            assert (await api.get(f"/events/{event['id']}")).json()["capacity"] == 10
            grow = await api.put(
                f"/events/{event['id']}/update", json={"capacity": 15}, headers=organizer
            )
            assert grow.status_code == 200
            await outbox_published(events)


async def test_no_booking_url_means_no_check(start_service):
    async with start_service(build_events, booking_url="") as events, http_client(events) as api:
        organizer = bearer(mint(uuid.uuid4(), "organizer"))
        event = await ten_seats(api, organizer)
        resp = await api.put(
            f"/events/{event['id']}/update", json={"capacity": 5}, headers=organizer
        )
        assert resp.status_code == 200 and resp.json()["capacity"] == 5
        await outbox_published(events)


async def test_a_strangers_capacity_change_is_refused_before_it_touches_the_inventory(
    booking, client
):
    """The internal route checks that the caller is the event's organizer (or an admin) before
    it writes: another organizer gets 404 at once, even while the event's inventory row is
    locked by a booking in flight (an update would wait for it), and nothing changes."""
    from tests.booking.conftest import event_created, feed

    event = event_created(capacity=10)
    await feed(booking, event)
    stranger = bearer(mint(uuid.uuid4(), "organizer"))
    async with booking.db.engine.connect() as locker:
        await locker.begin()
        await locker.execute(
            sa.text("SELECT 1 FROM inventory WHERE event_id = :e FOR UPDATE"), {"e": event.event_id}
        )
        resp = await asyncio.wait_for(
            client.put(
                f"/internal/events/{event.event_id}/capacity",
                json={"capacity": 3},
                headers=stranger,
            ),
            timeout=5,
        )
        await locker.rollback()
    assert resp.status_code == 404 and resp.json()["type"].endswith("event-not-found")
    assert await inventory(booking, event.event_id) == [(10, 0, 0)]

    owner = bearer(mint(event.organizer_id, "organizer"))
    ok = await client.put(
        f"/internal/events/{event.event_id}/capacity", json={"capacity": 3}, headers=owner
    )
    assert ok.status_code == 200 and ok.json()["capacity"] == 3
    admin = await client.put(
        f"/internal/events/{event.event_id}/capacity",
        json={"capacity": 4},
        headers=bearer(mint(uuid.uuid4(), "admin")),
    )
    assert admin.status_code == 200 and admin.json()["capacity"] == 4


async def test_a_ticket_types_capacity_below_its_held_and_sold_is_refused_too(start_service):
    """A type's own capacity is checked with booking as the event's is: below the type's seats
    already held or sold it is a 409 and changes nothing anywhere; at or above, booking has it
    before the organizer's answer."""
    async with booking_behind_events(start_service) as (booking, events, events_api, booking_api):
        organizer = bearer(mint(uuid.uuid4(), "organizer"))
        body = {k: v for k, v in event_body(capacity=10).items() if k != "price"}
        body["ticket_types"] = [
            {"name": "Early", "price": "10.00", "capacity": 5},
            {"name": "Regular", "price": "20.00"},
        ]
        event = (await events_api.post("/events/create", json=body, headers=organizer)).json()
        early, regular = (t["id"] for t in event["ticket_types"])

        async def early_at_booking() -> list:
            return await rows(
                booking,
                "SELECT capacity, held, sold FROM type_inventory WHERE ticket_type_id = :t",
                t=uuid.UUID(early),
            )

        await eventually(early_at_booking, until=lambda r: r == [(5, 0, 0)])
        held = await booking_api.post(
            "/booking/create",
            json={
                "event_id": event["id"],
                "lines": [
                    {"ticket_type_id": early, "quantity": 3},
                    {"ticket_type_id": regular, "quantity": 1},
                ],
            },
            headers=bearer(mint()),
        )
        assert held.status_code == 201, held.text

        url = f"/events/{event['id']}/ticket-types/{early}"
        refused = await events_api.put(url, json={"capacity": 2}, headers=organizer)
        assert refused.status_code == 409, refused.text
        assert refused.json()["type"].endswith("capacity-below-booked")
        assert "3 seats" in refused.json()["detail"]
        current = (await events_api.get(f"/events/{event['id']}")).json()
        assert [t["capacity"] for t in current["ticket_types"]] == [5, None]
        assert current["version"] == event["version"]
        assert await early_at_booking() == [(5, 3, 0)]

        # a stranger is refused by booking as for the event's capacity, and nothing changes
        stranger = bearer(mint(uuid.uuid4(), "organizer"))
        assert (await events_api.put(url, json={"capacity": 3}, headers=stranger)).status_code in (
            403,
            404,
        )

        applied = await events_api.put(url, json={"capacity": 3}, headers=organizer)
        assert applied.status_code == 200, applied.text
        assert applied.json()["capacity"] == 3
        assert await early_at_booking() == [(3, 3, 0)]  # booking has it already
        # the type is now sold out; the event's other seats still sell
        for lines, status in (
            ([{"ticket_type_id": early, "quantity": 1}], 409),
            ([{"ticket_type_id": regular, "quantity": 1}], 201),
        ):
            resp = await booking_api.post(
                "/booking/create",
                json={"event_id": event["id"], "lines": lines},
                headers=bearer(mint()),
            )
            assert resp.status_code == status, resp.text
        await outbox_published(events)
