"""The waiting list through the gateway, every service a real process: an event sells out, B
joins its waiting list, A's hold is cancelled; B gets an offered booking holding those seats
(never visible as free), a `waitlist_offer` e-mail, and pays it like any booking."""

from __future__ import annotations

import pytest

from tests.e2e.test_platform_flows import _async, book, booked, create_event, mail_to, paid
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def test_a_cancelled_hold_is_offered_to_the_waiting_list_and_paid(platform, api):
    _, _, organizer = await api.user("organizer")
    _, _, a = await api.user("customer")
    _, b_email, b = await api.user("customer")
    event = await create_event(api, organizer, capacity=2, price="30.00")
    held = await booked(api, a, event["id"], 2)

    # sold out: B may join (while seats are free, joining is refused)
    join = {"event_id": event["id"], "quantity": 2}
    status, entry, _ = await api.call("POST", "/booking/waitlist", b, json=join)
    assert status == 201, entry
    assert entry["status"] == "waiting" and entry["position"] == 1 and entry["quantity"] == 2
    assert set(entry) >= {"id", "event_id", "ticket_type_id", "quantity", "status", "position"}

    status, cancelled, _ = await api.call("POST", f"/booking/{held['id']}/cancel", a)
    assert status == 200 and cancelled["status"] == "cancelled", cancelled

    # the seats went to B in the cancellation's own transaction: nobody else can book them
    status, problem, _ = await book(api, a, event["id"], 1)
    assert status == 409 and problem["type"].endswith("/not-enough-seats"), problem
    status, listed, _ = await api.call("GET", "/booking/waitlist", b)
    assert status == 200, listed
    assert listed["next_cursor"] is None, listed
    [offer] = [e for e in listed["items"] if e["id"] == entry["id"]]
    assert offer["status"] == "offered" and offer["booking_id"] and offer["expires_at"], offer
    status, offered, _ = await api.call("GET", f"/booking/{offer['booking_id']}", b)
    assert status == 200 and offered["status"] == "pending" and offered["quantity"] == 2
    assert offered["amount"] == "60.00"

    mails = await eventually(lambda: _async(mail_to(platform, b_email, "waiting list")), timeout=20)
    assert offer["booking_id"] in mails[0].body and "60.00 EUR" in mails[0].body

    await paid(api, b, offer["booking_id"])

    async def seen():
        return (await api.call("GET", f"/booking/{offer['booking_id']}", b))[1]

    await eventually(seen, until=lambda x: x["status"] == "confirmed", timeout=20)
    status, listed, _ = await api.call("GET", "/booking/waitlist", b)
    assert [e["status"] for e in listed["items"] if e["id"] == entry["id"]] == ["purchased"]

    # a stranger cannot leave B's entry; B can take it off their list
    status, _, _ = await api.call("DELETE", f"/booking/waitlist/{entry['id']}", a)
    assert status == 404
    status, _, _ = await api.call("DELETE", f"/booking/waitlist/{entry['id']}", b)
    assert status == 204
