"""An organizer refunds part of a paid booking through the gateway, every service a real
process: booking asks payments for that part, payments refunds it through the card-network
simulator, and the booking's refund shows ``succeeded`` from payments' answer; the booking stays
confirmed, the payment shows what was refunded, and no more than what is left can be asked."""

from __future__ import annotations

import pytest

from tests.e2e.test_platform_flows import booked, create_event, paid
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def test_an_organizer_refunds_part_of_a_paid_booking(platform, api):
    _, _, organizer = await api.user("organizer")
    _, _, customer = await api.user("customer")
    event = await create_event(api, organizer, capacity=5, price="20.00")
    booking = await booked(api, customer, event["id"], 2)
    payment = await paid(api, customer, booking["id"])

    async def seen_by_customer():
        return (await api.call("GET", f"/booking/{booking['id']}", customer))[1]

    await eventually(seen_by_customer, until=lambda b: b["status"] == "confirmed", timeout=15)

    status, refunded, _ = await api.call(
        "POST", f"/booking/{booking['id']}/refund", organizer, json={"amount": "15.00"}
    )
    assert status == 200, refunded
    assert refunded["status"] == "confirmed"
    assert refunded["refund"] == {"amount": "15.00", "fee": "0.00", "status": "pending"}

    done = await eventually(
        seen_by_customer,
        until=lambda b: b["refund"] and b["refund"]["status"] == "succeeded",
        timeout=15,
    )
    assert done["status"] == "confirmed" and done["refund"]["amount"] == "15.00"
    status, now, _ = await api.call("GET", f"/payments/{payment['id']}", customer)
    assert status == 200 and now["refunded_amount"] == "15.00" and now["status"] == "succeeded"

    # 25.00 is left: more is refused, and a stranger cannot refund at all
    status, problem, _ = await api.call(
        "POST", f"/booking/{booking['id']}/refund", organizer, json={"amount": "25.01"}
    )
    assert status == 422 and problem["type"].endswith("/refund-exceeds-remaining"), problem
    _, _, stranger = await api.user("organizer")
    status, _, _ = await api.call(
        "POST", f"/booking/{booking['id']}/refund", stranger, json={"amount": "1.00"}
    )
    assert status == 404

    # the organizer's view lists it with its refund
    status, page, _ = await api.call("GET", f"/booking/events/{event['id']}/bookings", organizer)
    assert status == 200, page
    [listed] = page["items"]
    assert listed["id"] == booking["id"] and listed["refund"]["status"] == "succeeded"
