"""Tickets through the gateway, every service a real process: a customer books and pays
(tok_visa), gets one ticket per seat and its QR code (SVG), the confirmation e-mail carries the
same codes (decoded with a real QR reader), and the organizer's scanner checks a ticket in once
(200) and refuses the second scan (409 already-redeemed)."""

from __future__ import annotations

import pytest

from tests.e2e.test_platform_flows import create_event, paid
from tests.support.api_bodies import booking_body
from tests.support.qr import read_qr_png
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def test_book_pay_get_tickets_and_check_in_once(platform, api):
    _, _, organizer = await api.user("organizer")
    _, email, customer = await api.user("customer")
    event = await create_event(api, organizer, capacity=5, price="12.00")

    async def hold():
        body = booking_body(event["id"], "Ada Lovelace", "Alan Turing")
        return await api.call("POST", "/booking/create", customer, json=body)

    # booking learns about the new event from the bus: a 404 for a moment
    status, booking, _ = await eventually(hold, until=lambda r: r[0] != 404, timeout=15)
    assert status == 201, booking
    await paid(api, customer, booking["id"])

    async def tickets():
        return await api.call("GET", f"/booking/{booking['id']}/tickets", customer)

    status, page, _ = await eventually(tickets, until=lambda r: len(r[1]["items"]) == 2, timeout=15)
    assert status == 200
    first, second = page["items"]
    assert [first["attendee_name"], second["attendee_name"]] == ["Ada Lovelace", "Alan Turing"]
    assert first["status"] == second["status"] == "valid"

    # the QR code, as the customer's app shows it
    headers = {"Authorization": f"Bearer {customer}"}
    async with api.session.get(
        f"{api.base}/booking/tickets/{first['id']}/qr.svg", headers=headers
    ) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("image/svg+xml")
        assert "<svg" in await r.text()
    async with api.session.get(f"{api.base}/booking/tickets/{first['id']}/qr.svg") as r:
        assert r.status == 401

    # the confirmation e-mail holds the same secrets as PNG QR codes
    async def confirmations():
        return [
            m
            for m in platform.mail.messages
            if email in m.recipients and m.subject.startswith("Booking confirmed")
        ]

    [mail] = await eventually(confirmations, timeout=15)
    codes = [
        read_qr_png(p.get_content())
        for p in mail.message.iter_attachments()
        if p.get_content_type() == "image/png"
    ]
    assert codes == [[first["secret"]], [second["secret"]]]
    assert "Ada Lovelace" in mail.body

    # the organizer's scanner: the first scan redeems, the second is refused
    scan = {"event_id": event["id"], "secret": first["secret"]}
    status, ok, _ = await api.call("POST", "/booking/checkin", organizer, json=scan)
    assert status == 200, ok
    assert ok["result"] == "redeemed" and ok["ticket"]["id"] == first["id"]
    status, again, _ = await api.call("POST", "/booking/checkin", organizer, json=scan)
    assert status == 409 and again["type"].endswith("/already-redeemed"), again
    assert again["redeemed_at"]
    # the customer cannot scan, the counts say one in
    status, _, _ = await api.call("POST", "/booking/checkin", customer, json=scan)
    assert status == 404
    status, counts, _ = await api.call("GET", f"/booking/events/{event['id']}/checkins", organizer)
    assert status == 200 and (counts["tickets"], counts["redeemed"]) == (2, 1)
    status, jwk, _ = await api.call("GET", f"/booking/events/{event['id']}/checkin-key", organizer)
    assert status == 200 and (jwk["kty"], jwk["crv"]) == ("OKP", "Ed25519")
