"""A client told to retry a 404 (eventual consistency) with its Idempotency-Key gets through once
the service has caught up: a "not known here yet" answer is never stored under the key.

Found by the kill -9 run: payments restarted, answered 404 for a booking whose
``booking_created`` was still in its queue, stored that 404 under the client's key and replayed
it to every retry for 48 hours; the booking was never paid.
"""

from __future__ import annotations

import pytest

from apps.booking.bootstrap import build
from tests.booking.conftest import book_body, event_created, feed
from tests.conftest import http_client
from tests.support.tokens import bearer, mint

pytestmark = pytest.mark.integration


async def test_retry_after_not_yet_known_404_runs_again_with_the_same_key(start_service):
    async with (
        start_service(build, booking_sweep_interval_seconds=0) as booking,
        http_client(booking) as client,
    ):
        event = event_created(capacity=5)
        headers = {**bearer(mint()), "Idempotency-Key": "retry-me"}

        early = await client.post("/booking/create", json=book_body(event, 2), headers=headers)
        assert early.status_code == 404  # booking has not heard of the event yet

        await feed(booking, event)  # ... now it has
        retried = await client.post("/booking/create", json=book_body(event, 2), headers=headers)
        assert retried.status_code == 201, retried.text
        assert "Idempotent-Replayed" not in retried.headers

        replay = await client.post("/booking/create", json=book_body(event, 2), headers=headers)
        assert (replay.status_code, replay.json()) == (201, retried.json())
        assert replay.headers["Idempotent-Replayed"] == "true"
