"""Per ticket type figures (from the bookings' lines) and partial refunds in the analytics report,
from crafted contract messages on the real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from contracts.messages import BookingLine, implied_ticket_type_id
from tests.analytics.factories import EventFacts
from tests.analytics.test_analytics_report import (  # noqa: F401  (fixtures)
    analytics,
    client,
    publish,
    first_event_when,
)

pytestmark = pytest.mark.integration

EARLY, VIP = uuid.uuid4(), uuid.uuid4()


def line(type_id: uuid.UUID, name: str, quantity: int, unit_price: str) -> BookingLine:
    price = Decimal(unit_price)
    return BookingLine(
        ticket_type_id=type_id,
        name=name,
        quantity=quantity,
        unit_price=price,
        amount=price * quantity,
    )


async def test_tickets_and_revenue_per_type_and_partial_refunds(client, publish):  # noqa: F811
    organizer = uuid.uuid4()
    event = EventFacts(organizer_id=organizer, price=Decimal("15.00"))
    two_types = [line(EARLY, "Early bird", 2, "15.00"), line(VIP, "VIP", 1, "99.50")]
    mixed = event.booking(3)  # 2 early birds + 1 VIP = 129.50
    vip_only = event.booking(2)  # 2 VIP = 199.00, later cancelled and refunded in two parts
    legacy = event.booking(1)  # a booking message from before ticket types: no lines

    def facts(b, lines, amount):
        over = {"lines": lines, "amount": amount}
        return [b.created(**over), b.paid(amount=amount), b.confirmed(**over)]

    vip_lines = [line(VIP, "VIP", 2, "99.50")]
    first_part, second_part = uuid.uuid4(), uuid.uuid4()
    await publish(
        event.created(),
        *facts(mixed, two_types, Decimal("129.50")),
        *facts(vip_only, vip_lines, Decimal("199.00")),
        *facts(legacy, [], Decimal("15.00")),
        vip_only.cancelled(
            "organizer_refund", refund_due=True, lines=vip_lines, amount=Decimal("199.00")
        ),
        vip_only.refunded(refund_id=first_part, amount=Decimal("50.00")),
        vip_only.refunded(refund_id=second_part, amount=Decimal("149.00")),
        # the same refund told again (another message): counted once
        vip_only.refunded(refund_id=first_part, amount=Decimal("50.00")),
    )
    body = await first_event_when(client, organizer, payments_refunded=2, bookings_cancelled=1)
    [row] = body["events"]
    assert row["refunds"] == {"EUR": "199.00"} and row["revenue"] == {"EUR": "343.50"}
    assert row["net_revenue"] == {"EUR": "144.50"}
    assert body["totals"]["refunds"] == {"EUR": "199.00"}
    assert body["totals"]["payments_refunded"] == 2
    assert row["tickets_sold"] == 6
    by_type = {t["name"]: t for t in row["ticket_types"]}
    assert by_type == {
        "Early bird": {
            "ticket_type_id": str(EARLY),
            "name": "Early bird",
            "tickets_sold": 2,
            "tickets_cancelled": 0,
            "revenue": "30.00",
        },
        "VIP": {
            "ticket_type_id": str(VIP),
            "name": "VIP",
            "tickets_sold": 3,
            "tickets_cancelled": 2,
            "revenue": "298.50",
        },
        "General admission": {
            "ticket_type_id": str(implied_ticket_type_id(event.event_id)),
            "name": "General admission",
            "tickets_sold": 1,
            "tickets_cancelled": 0,
            "revenue": "15.00",
        },
    }
    assert sum(t["tickets_sold"] for t in row["ticket_types"]) == row["tickets_sold"]


async def test_a_refund_without_id_is_the_whole_amount_once(client, publish):  # noqa: F811
    organizer = uuid.uuid4()
    event = EventFacts(organizer_id=organizer)
    b = event.booking(2)
    await publish(
        event.created(), b.created(), b.paid(), b.confirmed(), b.cancelled(), b.refunded()
    )
    await publish(b.refunded())  # a second message of the same (id-less) refund
    body = await first_event_when(client, organizer, payments_refunded=1)
    [row] = body["events"]
    assert row["refunds"] == {"EUR": "40.00"}
    # a booking without lines: its event's General admission
    assert [
        (t["name"], t["tickets_sold"], t["tickets_cancelled"]) for t in row["ticket_types"]
    ] == [("General admission", 2, 2)]
