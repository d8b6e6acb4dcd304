"""Refunds in booking: a buyer's own cancellation follows the event's refund policy; the event's
organizer refunds any part of what was paid, never more in total, whatever runs at once; the
booking shows its refund's status from payments' answer; the organizer lists the event's
bookings (JSON, or the attendee list as CSV with formula cells escaped). Real PostgreSQL and
RabbitMQ; payments' answers are fed to booking's subscribers as the bus would."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from contracts.messages import PaymentRefunded, RefundFailed
from tests.booking.conftest import bound_queue, collect, event_created, feed, payment_for, scalar
from tests.support.tokens import bearer, mint
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

PROBLEMS = "https://eventbooking.dev/problems/"


def policy(**p: Any) -> dict[str, Any]:
    return {"refund_policy": {"self_service": True, "deadline_hours_before_start": 48, **p}}


async def on_sale(booking, **over: Any):
    event = event_created(capacity=50, **over)
    await feed(booking, event)
    return event


async def paid_booking(booking, client, event, quantity: int = 1, **body: Any) -> dict:
    """A confirmed booking of a new buyer, paid through payments' payment_confirmed."""
    buyer = uuid.uuid4()
    resp = await client.post(
        "/booking/create",
        json={"event_id": str(event.event_id), "quantity": quantity, **body},
        headers=bearer(mint(buyer)),
    )
    assert resp.status_code == 201, resp.text
    b = resp.json()
    await booking.subscribers["payment_confirmed"](payment_for(b))
    got = await client.get(f"/booking/{b['id']}", headers=bearer(mint(buyer)))
    assert got.json()["status"] == "confirmed"
    return got.json()


def owner(b: dict) -> dict[str, str]:
    return bearer(mint(b["user_id"]))


def organizer(event) -> dict[str, str]:
    return bearer(mint(event.organizer_id, "organizer"))


async def refunds_asked(queue, n: int) -> list[dict]:
    return [body for key, body in await collect(queue, n) if key == "refund_requested"]


def answer(b: dict, refund: dict, model=PaymentRefunded, **over: Any):
    fields = dict(
        payment_id=b["payment_id"],
        booking_id=b["id"],
        user_id=b["user_id"],
        event_id=b["event_id"],
        amount=Decimal(refund["amount"]),
        currency=b["currency"],
        reason=refund["reason"],
        refund_id=refund["refund_id"],
        producer="payments",
    )
    if model is PaymentRefunded:
        fields["provider_reference"] = "re_sim_1"
    else:
        fields["failure_reason"] = "provider_declined"
    return model(**{**fields, **over})


# --- a buyer's own cancellation -------------------------------------------------------------


async def test_cancelling_before_the_deadline_refunds_in_full_minus_the_fee(booking, client, amqp):
    asked_q = await bound_queue(amqp, "refund_requested")
    event = await on_sale(booking, price="33.33", **policy(fee_percent="10"))
    b = await paid_booking(booking, client, event)

    resp = await client.post(f"/booking/{b['id']}/cancel", headers=owner(b))

    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "cancelled" and body["cancellation_reason"] == "user_request"
    # 10% of 33.33 is 3.333: the fee is rounded to the cent, in Decimal
    assert body["refund"] == {"amount": "30.00", "fee": "3.33", "status": "pending"}
    [asked] = await refunds_asked(asked_q, 1)
    assert Decimal(asked["amount"]) == Decimal("30.00") and asked["refund_id"]
    assert asked["payment_id"] == b["payment_id"] and asked["reason"] == "user_request"

    await booking.subscribers["payment_refunded"](answer(b, asked))
    got = (await client.get(f"/booking/{b['id']}", headers=owner(b))).json()
    assert got["refund"]["status"] == "succeeded"


async def test_cancelling_after_the_deadline_is_refused(booking, client):
    event = await on_sale(booking, starts_at=datetime.now(UTC) + timedelta(hours=47), **policy())
    b = await paid_booking(booking, client, event)

    resp = await client.post(f"/booking/{b['id']}/cancel", headers=owner(b))

    assert resp.status_code == 409, resp.text
    assert resp.json()["type"] == PROBLEMS + "cancellation-closed"
    got = (await client.get(f"/booking/{b['id']}", headers=owner(b))).json()
    assert got["status"] == "confirmed" and got["refund"] is None


async def test_cancelling_a_paid_booking_is_refused_when_self_service_is_off(booking, client):
    event = await on_sale(booking, **policy(self_service=False))
    b = await paid_booking(booking, client, event)
    resp = await client.post(f"/booking/{b['id']}/cancel", headers=owner(b))
    assert resp.status_code == 409 and resp.json()["type"] == PROBLEMS + "cancellation-closed"


async def test_a_pending_booking_is_released_whatever_the_policy(booking, client):
    event = await on_sale(booking, **policy(self_service=False))
    buyer = uuid.uuid4()
    b = (
        await client.post(
            "/booking/create",
            json={"event_id": str(event.event_id), "quantity": 1},
            headers=bearer(mint(buyer)),
        )
    ).json()
    resp = await client.post(f"/booking/{b['id']}/cancel", headers=bearer(mint(buyer)))
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    assert resp.json()["refund"] is None


# --- organizer refunds ------------------------------------------------------------------------


async def test_an_organizer_refunds_part_then_the_rest_which_cancels_the_booking(
    booking, client, amqp
):
    asked_q = await bound_queue(amqp, "refund_requested")
    event = await on_sale(booking)
    b = await paid_booking(booking, client, event, quantity=2)  # 40.00

    part = await client.post(
        f"/booking/{b['id']}/refund", json={"amount": "15.00"}, headers=organizer(event)
    )
    assert part.status_code == 200, part.text
    assert part.json()["status"] == "confirmed"
    assert part.json()["refund"] == {"amount": "15.00", "fee": "0.00", "status": "pending"}

    why = "The band cancelled the encore; part of the price goes back."
    rest = await client.post(
        f"/booking/{b['id']}/refund", json={"reason": why}, headers=organizer(event)
    )
    assert rest.status_code == 200, rest.text
    assert rest.json()["status"] == "cancelled"
    assert rest.json()["cancellation_reason"] == "organizer_refund"
    assert rest.json()["refund"] == {
        "amount": "25.00",
        "fee": "0.00",
        "status": "pending",
        "reason": why,  # kept with the refund, for the record
    }
    listed = await client.get(
        f"/booking/events/{event.event_id}/bookings", headers=organizer(event)
    )
    assert [x["refund"]["reason"] for x in listed.json()["items"] if x["id"] == b["id"]] == [why]

    asked = await refunds_asked(asked_q, 2)
    assert sorted(Decimal(a["amount"]) for a in asked) == [Decimal("15.00"), Decimal("25.00")]
    assert all(a["reason"] == "organizer_refund" for a in asked)
    assert len({a["refund_id"] for a in asked}) == 2

    more = await client.post(
        f"/booking/{b['id']}/refund", json={"amount": "0.01"}, headers=organizer(event)
    )
    assert more.status_code == 422 and more.json()["type"] == PROBLEMS + "refund-exceeds-remaining"


async def test_more_than_remains_is_422_and_changes_nothing(booking, client):
    event = await on_sale(booking)
    b = await paid_booking(booking, client, event)  # 20.00
    resp = await client.post(
        f"/booking/{b['id']}/refund", json={"amount": "20.01"}, headers=organizer(event)
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["type"] == PROBLEMS + "refund-exceeds-remaining"
    assert (
        await scalar(
            booking, "SELECT refund_requested_total FROM bookings WHERE id = :b", b=b["id"]
        )
        == 0
    )
    bad = await client.post(
        f"/booking/{b['id']}/refund", json={"amount": "-1"}, headers=organizer(event)
    )
    assert bad.status_code == 422


async def test_strangers_and_the_buyer_get_404(booking, client):
    event = await on_sale(booking)
    b = await paid_booking(booking, client, event)
    for who in (bearer(mint(uuid.uuid4(), "organizer")), owner(b)):
        resp = await client.post(f"/booking/{b['id']}/refund", json={}, headers=who)
        assert resp.status_code == 404, resp.text
    admin = await client.post(
        f"/booking/{b['id']}/refund",
        json={"amount": "1.00"},
        headers=bearer(mint(uuid.uuid4(), "admin")),
    )
    assert admin.status_code == 200, admin.text


async def test_a_failed_refund_shows_failed_and_can_be_asked_again(booking, client, amqp):
    asked_q = await bound_queue(amqp, "refund_requested")
    event = await on_sale(booking)
    b = await paid_booking(booking, client, event)
    await client.post(
        f"/booking/{b['id']}/refund", json={"amount": "5.00"}, headers=organizer(event)
    )
    [asked] = await refunds_asked(asked_q, 1)

    await booking.subscribers["refund_failed"](answer(b, asked, RefundFailed))

    got = (await client.get(f"/booking/{b['id']}", headers=owner(b))).json()
    assert got["refund"] == {"amount": "5.00", "fee": "0.00", "status": "failed"}
    whole = await client.post(f"/booking/{b['id']}/refund", json={}, headers=organizer(event))
    assert whole.status_code == 200 and whole.json()["refund"]["amount"] == "20.00"


async def test_simultaneous_organizer_refunds_never_ask_more_than_was_paid(booking, client):
    event = await on_sale(booking)
    b = await paid_booking(booking, client, event, quantity=2)  # 40.00

    responses = await asyncio.gather(
        *(
            client.post(
                f"/booking/{b['id']}/refund", json={"amount": "5.00"}, headers=organizer(event)
            )
            for _ in range(20)
        )
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 8 + [422] * 12, [r.text for r in responses if r.status_code >= 500]
    assert await scalar(
        booking, "SELECT refund_requested_total FROM bookings WHERE id = :b", b=b["id"]
    ) == Decimal("40.00")
    assert await scalar(
        booking, "SELECT sum(amount) FROM booking_refunds WHERE booking_id = :b", b=b["id"]
    ) == Decimal("40.00")
    got = (await client.get(f"/booking/{b['id']}", headers=owner(b))).json()
    assert got["status"] == "cancelled"


# --- the organizer's view ---------------------------------------------------------------------


async def test_the_organizer_lists_the_events_bookings_as_json_and_csv(booking, client):
    event = await on_sale(booking)
    evil = "=cmd|' /C calc'!A0"
    b = await paid_booking(
        booking,
        client,
        event,
        quantity=2,
        attendees=[{"name": evil, "email": "a@example.com"}, {"name": "Ada"}],
    )
    other = await paid_booking(booking, client, event)

    page = await client.get(
        f"/booking/events/{event.event_id}/bookings", params={"limit": 1}, headers=organizer(event)
    )
    assert page.status_code == 200, page.text
    [first] = page.json()["items"]
    assert first["id"] == other["id"] and page.json()["next_cursor"]
    rest = await client.get(
        f"/booking/events/{event.event_id}/bookings",
        params={"cursor": page.json()["next_cursor"]},
        headers=organizer(event),
    )
    [second] = rest.json()["items"]
    assert second["id"] == b["id"] and second["status"] == "confirmed"
    assert [a["name"] for a in second["attendees"]] == [evil, "Ada"]
    assert second["lines"][0]["quantity"] == 2

    exported = await client.get(
        f"/booking/events/{event.event_id}/bookings",
        headers={**organizer(event), "Accept": "text/csv"},
    )
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 3
    names = sorted(r["attendee_name"] for r in rows if r["booking_id"] == b["id"])
    assert names == ["'" + evil, "Ada"]  # the formula is text to a spreadsheet

    for who in (bearer(mint(uuid.uuid4(), "organizer")), owner(b)):
        resp = await client.get(f"/booking/events/{event.event_id}/bookings", headers=who)
        assert resp.status_code == 404, resp.text
    assert (
        await client.get(
            f"/booking/events/{event.event_id}/bookings",
            headers=bearer(mint(uuid.uuid4(), "admin")),
        )
    ).status_code == 200


async def test_an_event_cancelled_after_a_partial_refund_refunds_only_the_rest(
    booking, client, amqp
):
    from contracts.messages import EventCancelled
    from tests.booking.conftest import later

    asked_q = await bound_queue(amqp, "refund_requested")
    event = await on_sale(booking)
    b = await paid_booking(booking, client, event, quantity=2)  # 40.00
    await client.post(
        f"/booking/{b['id']}/refund", json={"amount": "10.00"}, headers=organizer(event)
    )

    await feed(booking, later(event, EventCancelled, 2))

    asked = await refunds_asked(asked_q, 2)
    assert sorted(Decimal(a["amount"]) for a in asked) == [Decimal("10.00"), Decimal("30.00")]
    await eventually(
        lambda: scalar(
            booking, "SELECT refund_requested_total FROM bookings WHERE id = :b", b=b["id"]
        ),
        until=lambda v: v == Decimal("40.00"),
    )
