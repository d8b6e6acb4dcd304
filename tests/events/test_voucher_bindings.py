"""Booking's messages reach the events service only once it has a voucher whose uses they may
move (``kit.bindings``), against the real RabbitMQ and PostgreSQL; the bindings are read with
``rabbitmqctl list_bindings``."""

from __future__ import annotations

import os
import uuid

import pytest

from apps.events.bootstrap import build
from apps.events.deps import EventsDeps
from apps.events.entrypoints.messages import VOUCHER_USES
from tests.conftest import VHOST, http_client
from tests.events.test_events_api import event_body
from tests.support.bus import bound_routing_keys
from tests.support.tokens import bearer, mint

pytestmark = pytest.mark.integration

FACTS = {"booking_created", "booking_confirmed", "booking_cancelled", "booking_expired"}


@pytest.fixture
async def events(start_service):
    # A database of its own: no voucher of the other tests' services.
    prefix = os.environ["DATABASE_PREFIX"] + f"vb{uuid.uuid4().hex[:6]}_"
    async with start_service(build, database_prefix=prefix) as svc:
        yield svc


async def test_bookings_messages_are_bound_from_the_first_voucher_on(events):
    bindings = EventsDeps.of(events).bindings
    assert set(bindings.queues) == FACTS == {m.routing_key for m, _ in VOUCHER_USES}
    assert await bindings.reconcile(events.db) == dict.fromkeys(sorted(FACTS), False)
    assert await bound_routing_keys(VHOST, "events") & FACTS == set()

    token = mint(uuid.uuid4(), "organizer")
    async with http_client(events) as client:
        event = await client.post("/events/create", json=event_body(), headers=bearer(token))
        assert event.status_code == 201, event.text
        assert await bound_routing_keys(VHOST, "events") & FACTS == set()  # an event needs none
        voucher = await client.post(
            f"/events/{event.json()['id']}/vouchers",
            json={"code": "FIRST", "max_uses": 3, "percent_off": "10"},
            headers=bearer(token),
        )
    assert voucher.status_code == 201, voucher.text
    assert await bound_routing_keys(VHOST, "events") & FACTS == FACTS  # before it was answered
    assert await bindings.reconcile(events.db) == dict.fromkeys(sorted(FACTS), True)
    assert await bound_routing_keys(VHOST, "events") & FACTS == FACTS
