"""An organizer's voucher through the gateway, every service a real process: the events service
announces it, booking applies its discount to a hold (the booking shows `discount`, its
`amount` after it), payments charges that amount, and the organizer sees the use counted back
at the events service; the last use taken, the next order is refused with nothing held."""

from __future__ import annotations

import pytest

from tests.e2e.test_platform_flows import create_event, pay
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def test_a_voucher_discounts_a_booking_and_its_use_is_counted(platform, api):
    _, _, organizer = await api.user("organizer")
    _, _, customer = await api.user("customer")
    _, _, other = await api.user("customer")
    event = await create_event(api, organizer, capacity=10, price="20.00")
    status, voucher, _ = await api.call(
        "POST",
        f"/events/{event['id']}/vouchers",
        organizer,
        json={"code": "friends25", "percent_off": "25", "max_uses": 1},
    )
    assert status == 201, voucher
    assert (voucher["code"], voucher["used"]) == ("FRIENDS25", 0)

    order = {"event_id": event["id"], "quantity": 2, "voucher_code": "Friends25"}
    # booking learns the event and the voucher from the bus: unknown (404 / 422) for a moment
    status, booking, _ = await eventually(
        lambda: api.call("POST", "/booking/create", customer, json=order),
        until=lambda r: r[0] not in (404, 422),
        timeout=15,
    )
    assert status == 201, booking
    assert (booking["amount"], booking["discount"], booking["voucher_code"]) == (
        "30.00",
        "10.00",
        "FRIENDS25",
    )

    status, payment, _ = await pay(api, customer, booking["id"])
    assert status in (200, 201) and payment["amount"] == "30.00", payment

    # its only use is taken: another order with it holds nothing
    status, problem, _ = await api.call("POST", "/booking/create", other, json=order)
    assert status == 409 and problem["type"].endswith("/voucher-exhausted"), problem
    status, mine, _ = await api.call("GET", "/booking", other)
    assert status == 200 and mine["items"] == [], mine

    async def listed():
        return (await api.call("GET", f"/events/{event['id']}/vouchers", organizer))[1]

    page = await eventually(listed, until=lambda p: p["items"][0]["used"] == 1, timeout=15)
    assert page["items"][0]["id"] == voucher["id"]
