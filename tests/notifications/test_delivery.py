"""The notifications service against the real RabbitMQ and PostgreSQL, sending real e-mail over
SMTP to an aiosmtpd sink running in the test (on a free port)."""

from __future__ import annotations

from typing import Any

import pytest

from apps.notifications.bootstrap import build
from apps.notifications.deps import NotificationsDeps
from tests.conftest import http_client
from tests.notifications import helpers as h
from tests.notifications.helpers import FAST_RETRIES, send
from tests.support.tokens import bearer, mint
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def service(start_service, module_sink):
    # prefetch 1: each queue hands this service one message at a time (see the duplicate test)
    async with start_service(
        build, smtp_port=module_sink.port, consumer_prefetch=1, **FAST_RETRIES
    ) as svc:
        yield svc


async def test_registered_user_gets_the_welcome_email_at_the_smtp_server(service, bus, module_sink):
    msg = h.user_registered(full_name="Grace Hopper")
    await send(bus, msg)
    [mail] = await eventually(lambda: module_sink.mail_to(msg.email))
    assert mail.subject == "Welcome to Event Booking"
    assert "Hello Grace Hopper," in mail.body and msg.email in mail.body
    [row] = await eventually(
        lambda: h.stored(service, user_id=msg.user_id, status="sent"), timeout=5
    )
    assert mail.message["Message-ID"] == f"<{row.id}@eventbooking.local>"
    assert row.attempts == 1 and row.sent_at is not None


async def test_failed_payment_of_a_known_user_is_emailed(service, bus, module_sink):
    user = h.user_registered()
    await send(bus, user)
    msg = h.payment_failed(user.user_id)
    await send(bus, msg)
    mails = await eventually(lambda: module_sink.mail_to(user.email, "Payment failed"))
    assert len(mails) == 1
    assert "40.00 EUR" in mails[0].body and str(msg.booking_id) in mails[0].body
    assert mails[0].message["X-Notification-Kind"] == "payment_failed"


async def test_a_message_delivered_twice_sends_one_email(service, bus, module_sink):
    user = h.user_registered()
    await send(bus, user)
    duplicated = h.booking_confirmed(user.user_id)
    later = h.booking_confirmed(user.user_id)
    await send(bus, duplicated)
    await send(bus, duplicated)
    # With prefetch 1 the queue hands `later` over only after both copies were acked, i.e.
    # after their units of work committed: once `later` is mailed, the duplicate was handled.
    await send(bus, later)

    def confirmations() -> Any:
        return module_sink.mail_to(user.email, "Booking confirmed")

    await eventually(
        confirmations, until=lambda ms: any(str(later.booking_id) in m.body for m in ms)
    )
    # A batch's mails go out before its outcomes commit: wait for the commit, not the mail.
    rows = await eventually(
        lambda: h.stored(service, source_message_id=duplicated.message_id),
        until=lambda rows: rows and all(r.status != "pending" for r in rows),
        timeout=5,
    )
    assert [(r.kind, r.status) for r in rows] == [("booking_confirmed", "sent")]
    mails = await confirmations()
    assert sum(str(duplicated.booking_id) in m.body for m in mails) == 1
    assert len(mails) == 2


async def test_sms_and_push_go_through_their_providers(service, bus, module_sink):
    user = h.user_registered(phone="+351910000002")
    await send(bus, user)
    await eventually(lambda: h.contact_of(service, user.user_id))
    confirmed = h.booking_confirmed(user.user_id)
    await send(bus, confirmed)
    pushed = h.notification_requested(user.user_id, channel="push", subject="Gate B")
    await send(bus, pushed)

    rows = await eventually(
        lambda: h.stored(service, user_id=user.user_id, status="sent"),
        until=lambda rows: len(rows) == 4,  # welcome e-mail, confirmation e-mail + SMS, push
    )
    assert sorted((r.kind, r.channel) for r in rows) == [
        ("booking_confirmed", "email"),
        ("booking_confirmed", "sms"),
        ("custom", "push"),
        ("welcome", "email"),
    ]
    senders = NotificationsDeps.of(service).senders
    sms_text = [text for to, text in senders["sms"].sent if to == "+351910000002"]
    assert len(sms_text) == 1 and str(confirmed.booking_id) in sms_text[0]
    assert (str(user.user_id), "Gate B", "Bring your ticket.") in senders["push"].sent


async def test_admin_send_is_admin_only_and_gets_delivered(service, bus, module_sink):
    user = h.user_registered()
    await send(bus, user)
    await eventually(lambda: h.contact_of(service, user.user_id))
    body = {
        "user_id": str(user.user_id),
        "channel": "email",
        "subject": "Hi",
        "body": "Doors at 9.",
    }
    async with http_client(service) as client:
        no_token = await client.post("/notifications/send", json=body)
        assert no_token.status_code == 401
        assert no_token.headers["content-type"].startswith("application/problem+json")
        customer = await client.post(
            "/notifications/send", json=body, headers=bearer(mint(user.user_id, "customer"))
        )
        assert customer.status_code == 403
        bad = await client.post(
            "/notifications/send",
            json=body | {"channel": "fax"},
            headers=bearer(mint(role="admin")),
        )
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "body.channel"
        no_phone = await client.post(
            "/notifications/send",
            json=body | {"channel": "sms"},
            headers=bearer(mint(role="admin")),
        )
        assert no_phone.status_code == 422, no_phone.text
        assert no_phone.json() == {
            "type": "https://eventbooking.dev/problems/no-address",
            "title": "Unprocessable Content",
            "status": 422,
            "detail": "The user has no address for the sms channel.",
            "instance": "/notifications/send",
            "errors": [
                {
                    "field": "body.channel",
                    "type": "value_error",
                    "message": "The user has no address for the sms channel.",
                }
            ],
        }

        resp = await client.post(
            "/notifications/send", json=body, headers=bearer(mint(role="admin"))
        )
        assert resp.status_code == 202, resp.text
        assert resp.json()["status"] == "pending"
        notification_id = resp.json()["id"]

    [mail] = await eventually(lambda: module_sink.mail_to(user.email, "Hi"))
    assert "Doors at 9." in mail.body
    assert mail.message["Message-ID"] == f"<{notification_id}@eventbooking.local>"
    # nothing but the welcome e-mail and this one went to the user
    assert sorted(m.subject for m in module_sink.to(user.email)) == [
        "Hi",
        "Welcome to Event Booking",
    ]


async def test_users_list_only_their_own_notifications(service, bus):
    ada, bob = h.user_registered(), h.user_registered()
    await send(bus, ada)
    await send(bus, bob)
    for _ in range(3):
        await send(bus, h.booking_expired(ada.user_id))
    async with http_client(service) as client:

        async def page(user: Any, **params: Any) -> Any:
            resp = await client.get(
                "/notifications", params=params, headers=bearer(mint(user.user_id))
            )
            assert resp.status_code == 200, resp.text
            return resp.json()

        first = await eventually(lambda: page(ada, limit=3), until=lambda p: p["next_cursor"])
        second = await page(ada, limit=3, cursor=first["next_cursor"])
        items = first["items"] + second["items"]
        assert second["next_cursor"] is None
        assert sorted(i["kind"] for i in items) == ["booking_expired"] * 3 + ["welcome"]
        assert len({i["id"] for i in items}) == 4
        assert set(items[0]) >= {"id", "kind", "channel", "subject", "status", "created_at"}
        assert [i["created_at"] for i in items] == sorted(
            (i["created_at"] for i in items), reverse=True
        )

        bobs = await eventually(lambda: page(bob), until=lambda p: p["items"])
        assert [i["kind"] for i in bobs["items"]] == ["welcome"]
        assert not {i["id"] for i in bobs["items"]} & {i["id"] for i in items}

        assert (await client.get("/notifications")).status_code == 401
        bad_cursor = await client.get(
            "/notifications", params={"cursor": "!!"}, headers=bearer(mint(ada.user_id))
        )
        assert bad_cursor.status_code == 400
