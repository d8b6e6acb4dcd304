"""Voucher discounts in the analytics report: added up per currency when their bookings are
confirmed (an unpaid hold's discount is not counted), from crafted contract messages on the real
RabbitMQ and PostgreSQL."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from tests.analytics.factories import EventFacts
from tests.analytics.test_analytics_report import (  # noqa: F401  (fixtures)
    analytics,
    client,
    publish,
    first_event_when,
)

pytestmark = pytest.mark.integration


async def test_discounts_of_confirmed_bookings_are_added_up(client, publish):  # noqa: F811
    organizer = uuid.uuid4()
    event = EventFacts(organizer_id=organizer, price=Decimal("20.00"))
    paid = event.booking(2)  # 40.00 - 10 % = 36.00
    lapsed = event.booking(1)  # 20.00 - 10 %, never paid: not counted
    plain = event.booking(1)  # no voucher
    v = {"voucher_code": "SAVE10", "discount": Decimal("4.00"), "amount": Decimal("36.00")}
    w = {"voucher_code": "SAVE10", "discount": Decimal("2.00"), "amount": Decimal("18.00")}
    await publish(
        event.created(),
        paid.created(**v, voucher_use=1),
        paid.paid(amount=Decimal("36.00")),
        paid.confirmed(**v),
        lapsed.created(**w, voucher_use=1),
        lapsed.expired(**w, voucher_use=-1),
        plain.created(),
        plain.paid(),
        plain.confirmed(),
    )

    body = await first_event_when(client, organizer, bookings_confirmed=2, bookings_expired=1)

    [row] = body["events"]
    assert row["discounts"] == {"EUR": "4.00"}
    assert row["revenue"] == {"EUR": "56.00"}  # what was paid, after the discount
    assert body["totals"]["discounts"] == {"EUR": "4.00"}
