"""An event's live availability through the gateway, every service a real process: the plain
read with its ETag (no token needed), and the event stream delivering each change as it
happens, not when the stream ends."""

from __future__ import annotations

import time

import pytest

from tests.e2e.test_platform_flows import booked, create_event, until_known
from tests.support.sse import next_data

pytestmark = pytest.mark.integration


async def test_availability_through_the_gateway_is_public_and_streams_each_change(api):
    _, _, organizer = await api.user("organizer")
    _, _, customer = await api.user("customer")
    event = await create_event(api, organizer, capacity=5)
    path = f"/booking/events/{event['id']}/availability"

    status, body, headers = await until_known(lambda: api.call("GET", path))
    assert status == 200, body
    assert (body["capacity"], body["available"], body["held"], body["sold"]) == (5, 5, 0, 0)
    etag = headers["ETag"]
    status, _, _ = await api.call("GET", path, headers={"If-None-Match": etag})
    assert status == 304

    async with api.session.get(
        api.base + path + "/stream", headers={"Accept": "text/event-stream"}
    ) as stream:
        assert stream.status == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        first = await next_data(stream, timeout=2)  # while the server keeps the stream open
        assert first["available"] == 5

        await booked(api, customer, event["id"], 2)
        booked_at = time.perf_counter()
        second = await next_data(stream, timeout=3)
        assert time.perf_counter() - booked_at < 1.5  # within a second (plus a loaded machine)
        assert (second["available"], second["held"]) == (3, 2)
        assert second["version"] != first["version"]

    status, _, headers = await api.call("GET", path, headers={"If-None-Match": etag})
    assert status == 200 and headers["ETag"] != etag
