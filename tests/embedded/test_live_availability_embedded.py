"""Live availability in the embedded all-in-one mode (SQLite, in-memory broker), through its
gateway: the plain read and the stream with its update after a booking."""

from __future__ import annotations


import pytest

from tests.embedded.test_embedded_mode import Client, Embedded
from tests.embedded.test_embedded_mode import api as api, embedded as embedded  # its platform
from tests.support.sse import next_data

pytestmark = pytest.mark.integration


async def test_availability_streams_on_sqlite(embedded: Embedded, api: Client) -> None:
    _, organizer = await api.user("organizer")
    _, customer = await api.user("customer")
    event = await api.event(organizer, "Embedded gig", capacity=4, price="25.00")
    path = f"/booking/events/{event['id']}/availability"
    status, body = await api.until_known("GET", path, "")
    assert status == 200 and body["available"] == 4, body

    async with api.session.get(
        embedded.gateway + path + "/stream", headers={"Accept": "text/event-stream"}
    ) as stream:
        assert stream.status == 200
        assert (await next_data(stream, 3))["available"] == 4
        status, booking = await api.call(
            "POST", "/booking/create", customer, json={"event_id": event["id"], "quantity": 3}
        )
        assert status == 201, booking
        changed = await next_data(stream, 3)
        assert (changed["available"], changed["held"]) == (1, 3)
