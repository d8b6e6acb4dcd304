"""The seed's example flows, through the gateway, with every service a real process.

registration -> welcome e-mail; booking created -> payment can start; payment confirmed ->
booking confirmed -> the user is told and analytics counts it; and the failure branch.
"""

from __future__ import annotations

import uuid

import pytest

from tests.support.waiting import eventually
from tests.support.api_bodies import event_body

pytestmark = pytest.mark.integration


def concert(capacity: int = 10, price: str = "25.00") -> dict:
    """An event body of its own title (one platform serves the whole session)."""
    return event_body(
        title=f"Concert {uuid.uuid4().hex[:6]}", venue="Coliseu", capacity=capacity, price=price
    )


async def until_known(call, *, timeout: float = 10.0):
    """Eventual consistency: another service may not know a new id for a moment (404)."""
    return await eventually(call, until=lambda r: r[0] != 404, timeout=timeout)


async def create_event(api, organizer_token: str, **kw) -> dict:
    status, event, _ = await api.call("POST", "/events/create", organizer_token, json=concert(**kw))
    assert status == 201, event
    return event


async def book(api, token: str, event_id: str, quantity: int, **kw):
    return await until_known(
        lambda: api.call(
            "POST",
            "/booking/create",
            token,
            json={"event_id": event_id, "quantity": quantity},
            **kw,
        )
    )


async def pay(api, token: str, booking_id: str, card: str = "tok_visa", **kw):
    return await until_known(
        lambda: api.call(
            "POST",
            "/payments/process",
            token,
            json={"booking_id": booking_id, "payment_method": {"type": "card", "token": card}},
            **kw,
        )
    )


async def booked(api, token: str, event_id: str, quantity: int) -> dict:
    """A hold that is taken (201)."""
    status, booking, _ = await book(api, token, event_id, quantity)
    assert status == 201, booking
    return booking


async def paid(api, token: str, booking_id: str) -> dict:
    """The booking paid by card, the charge succeeded."""
    status, payment, _ = await pay(api, token, booking_id)
    assert status in (200, 201) and payment["status"] == "succeeded", payment
    return payment


def mail_to(platform, address: str, needle: str = "") -> list:
    return [
        m
        for m in platform.mail.messages
        if address in m.recipients and needle.lower() in (m.subject + m.body).lower()
    ]


async def test_registration_sends_a_welcome_email(platform, api):
    _, email, _ = await api.user()
    await eventually(lambda: _async(mail_to(platform, email)), timeout=15)


async def _async(value):
    return value


async def test_paid_booking_is_confirmed_told_and_counted(platform, api):
    _, _, organizer = await api.user("organizer")
    _, email, customer = await api.user("customer")
    event = await create_event(api, organizer, capacity=5, price="25.00")

    booking = await booked(api, customer, event["id"], 2)
    assert booking["status"] == "pending" and booking["amount"] == "50.00"

    payment = await paid(api, customer, booking["id"])
    assert payment["amount"] == "50.00"

    async def booking_status():
        return (await api.call("GET", f"/booking/{booking['id']}", customer))[1]["status"]

    await eventually(booking_status, until=lambda s: s == "confirmed", timeout=15)
    await eventually(lambda: _async(mail_to(platform, email, "confirm")), timeout=15)

    async def report():
        return (await api.call("GET", f"/analytics/report?event_id={event['id']}", organizer))[1]

    # booking's confirmation and payments' success are two facts, counted in either order
    counted = await eventually(
        report,
        until=lambda r: r
        and (r["totals"]["bookings_confirmed"], r["totals"]["payments_succeeded"]) == (1, 1),
        timeout=15,
    )
    assert counted["totals"]["tickets_sold"] == 2
    assert counted["totals"]["revenue"] == {"EUR": "50.00"}
    # nobody else sees the booking or the payment
    _, _, stranger = await api.user()
    assert (await api.call("GET", f"/booking/{booking['id']}", stranger))[0] == 404
    assert (await api.call("GET", f"/payments/{payment['id']}", stranger))[0] == 404


async def test_declined_payment_cancels_frees_seats_and_tells_the_user(platform, api):
    _, _, organizer = await api.user("organizer")
    _, email, customer = await api.user("customer")
    event = await create_event(api, organizer, capacity=2)

    booking = await booked(api, customer, event["id"], 2)
    _, _, other = await api.user("customer")
    status, body, _ = await api.call(
        "POST", "/booking/create", other, json={"event_id": event["id"], "quantity": 1}
    )
    assert status == 409, body  # sold out while held

    status, payment, _ = await pay(api, customer, booking["id"], card="tok_chargeDeclined")
    assert status in (200, 201) and payment["status"] == "failed", payment

    async def booking_status():
        return (await api.call("GET", f"/booking/{booking['id']}", customer))[1]["status"]

    await eventually(booking_status, until=lambda s: s == "cancelled", timeout=15)
    await eventually(lambda: _async(mail_to(platform, email, "payment")), timeout=15)

    # the seats are free again
    async def rebook():
        return await api.call(
            "POST", "/booking/create", other, json={"event_id": event["id"], "quantity": 2}
        )

    status, body, _ = await eventually(rebook, until=lambda r: r[0] == 201, timeout=10)
    assert body["quantity"] == 2


async def test_logout_through_the_gateway_revokes_the_refresh_token(platform, api):
    """Logout needs no access token (a client whose access token expired still logs out), and
    afterwards the refresh token no longer works."""
    _, email, _ = await api.user()
    status, tokens, _ = await api.call(
        "POST", "/auth/login", json={"email": email, "password": "correct horse battery staple 42"}
    )
    assert status == 200, tokens
    status, body, _ = await api.call(
        "POST", "/auth/logout", json={"refresh_token": tokens["refresh_token"]}
    )
    assert status == 204, body
    status, body, _ = await api.call(
        "POST", "/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert status == 401, body
