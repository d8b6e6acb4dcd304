"""Payments with the real events and booking services on the real broker: the booking saga's
payment steps (paid → confirmed; declined → cancelled; paid then cancelled → refunded)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from apps.booking.bootstrap import build as build_booking
from apps.events.bootstrap import build as build_events
from apps.payments.bootstrap import build as build_payments
from tests.conftest import http_client
from tests.payments.conftest import due_status, pay
from tests.support.api_bodies import event_body
from tests.support.tokens import bearer, mint
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def platform(start_service):
    async with (
        start_service(build_events) as events,
        start_service(build_booking) as booking,
        start_service(build_payments) as payments,
        http_client(events) as events_api,
        http_client(booking) as booking_api,
        http_client(payments) as payments_api,
    ):
        yield events_api, booking_api, payments_api, payments


async def book(events_api, booking_api, user: str) -> dict:
    event = (
        await events_api.post(
            "/events/create",
            headers=bearer(mint(role="organizer")),
            json=event_body(title="Saga", capacity=5, price="15.00"),
        )
    ).json()

    async def try_booking():  # booking learns about the event from the queue
        resp = await booking_api.post(
            "/booking/create", json={"event_id": event["id"], "quantity": 2}, headers=user
        )
        return resp if resp.status_code == 201 else None

    return (await eventually(try_booking)).json()


async def book_and_pay(platform, card: str) -> tuple[dict[str, str], dict, Any]:
    """A new user books, and pays with the simulator's card token ``card`` once payments knows
    the booking: the user's headers, the booking and the payment's response."""
    events_api, booking_api, payments_api, payments = platform
    user = bearer(mint(uuid.uuid4()))
    booking = await book(events_api, booking_api, user)
    await eventually(lambda: due_status(payments, uuid.UUID(booking["id"])))
    resp = await payments_api.post("/payments/process", headers=user, json=pay(booking["id"], card))
    return user, booking, resp


async def booking_status(booking_api, booking_id: str, user) -> str:
    return (await booking_api.get(f"/booking/{booking_id}", headers=user)).json()["status"]


async def test_paid_booking_is_confirmed_and_refunded_when_cancelled(platform):
    _, booking_api, payments_api, _ = platform
    user, booking, resp = await book_and_pay(platform, "tok_visa")
    assert resp.status_code == 201, resp.text
    payment = resp.json()
    assert (
        (payment["amount"], payment["currency"])
        == ("30.00", "EUR")
        == (booking["amount"], booking["currency"])
    )
    await eventually(
        lambda: booking_status(booking_api, booking["id"], user), until=lambda s: s == "confirmed"
    )

    cancelled = await booking_api.post(f"/booking/{booking['id']}/cancel", headers=user)
    assert cancelled.status_code == 200, cancelled.text

    async def payment_status():
        return (await payments_api.get(f"/payments/{payment['id']}", headers=user)).json()["status"]

    await eventually(payment_status, until=lambda s: s == "refunded")


async def test_declined_payment_cancels_the_booking_and_it_stays_unpayable(platform):
    _, booking_api, payments_api, payments = platform
    user, booking, resp = await book_and_pay(platform, "tok_chargeDeclined")
    assert resp.status_code == 201 and resp.json()["status"] == "failed"
    await eventually(
        lambda: booking_status(booking_api, booking["id"], user), until=lambda s: s == "cancelled"
    )
    await eventually(
        lambda: due_status(payments, uuid.UUID(booking["id"])), until=lambda s: s == "cancelled"
    )
    retry = await payments_api.post("/payments/process", headers=user, json=pay(booking["id"]))
    assert retry.status_code == 409
