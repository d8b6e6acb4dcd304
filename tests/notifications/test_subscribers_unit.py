"""Every notifications subscriber under FastStream's TestRabbitBroker (in-memory broker, real
database): typed payloads in, the right notification stored (rendered and addressed), nothing
stored twice, and contract-breaking payloads rejected. Delivery is not running here."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from faststream.rabbit import TestRabbitBroker

from apps.notifications import handlers
from apps.notifications.bootstrap import build
from contracts.envelope import Envelope
from contracts.topology import DOMAIN_EXCHANGE
from tests.notifications import helpers as h


@pytest.fixture(scope="module")
async def service(start_service):
    async with start_service(build, connect_broker=False, delivery_worker=False) as svc:
        yield svc


async def publish(service: Any, *messages: Envelope) -> None:
    async with TestRabbitBroker(service.broker) as br:
        for msg in messages:
            await br.publish(msg, exchange=DOMAIN_EXCHANGE, routing_key=msg.routing_key)


async def known_user(service: Any, **over: Any) -> uuid.UUID:
    msg = h.user_registered(**over)
    await publish(service, msg)
    return msg.user_id


# (message factory, subscriber key, kind stored, text every rendering must contain)
CASES: list[tuple[Callable[..., Envelope], str, str, str]] = [
    (h.booking_confirmed, "booking_confirmed", "booking_confirmed", "40.00 EUR"),
    (h.booking_cancelled, "booking_cancelled", "booking_cancelled", "at your request"),
    (h.booking_expired, "booking_expired", "booking_expired", "expired"),
    (h.payment_failed, "payment_failed", "payment_failed", "card declined"),
    (h.payment_refunded, "payment_refunded", "payment_refunded", "40.00 EUR"),
    (h.waitlist_offered, "waitlist_offered", "waitlist_offer", "before 2027-05-01 09:10 UTC"),
]


@pytest.mark.parametrize(("factory", "key", "kind", "text"), CASES, ids=[c[1] for c in CASES])
async def test_lifecycle_message_stores_one_pending_email_for_the_user(
    service, factory, key, kind, text
):
    user = await known_user(service)
    msg = factory(user)
    async with TestRabbitBroker(service.broker) as br:
        await br.publish(msg, exchange=DOMAIN_EXCHANGE, routing_key=msg.routing_key)
        await br.publish(msg, exchange=DOMAIN_EXCHANGE, routing_key=msg.routing_key)  # duplicate
        subscriber = service.subscribers[key]
        assert subscriber.mock.call_count == 2
        assert type(msg).model_validate(subscriber.mock.call_args.args[0]) == msg

    rows = await h.stored(service, source_message_id=msg.message_id)
    assert [(r.kind, r.channel, r.status) for r in rows] == [(kind, "email", "pending")]
    row = rows[0]
    assert row.user_id == user and row.recipient == f"u{user.hex[:10]}@example.com"
    assert row.subject and "Hello Ada Lovelace," in row.body
    assert text in row.body
    assert str(msg.booking_id) in row.body  # type: ignore[attr-defined]


async def test_user_registered_keeps_the_contact_and_stores_the_welcome_email(service):
    msg = h.user_registered(phone="+351910000000")
    await publish(service, msg, msg)
    contact = await h.contact_of(service, msg.user_id)
    assert (contact.email, contact.full_name, contact.phone) == (
        msg.email,
        "Ada Lovelace",
        "+351910000000",
    )
    rows = await h.stored(service, user_id=msg.user_id)
    assert [(r.kind, r.channel, r.status, r.recipient) for r in rows] == [
        ("welcome", "email", "pending", msg.email)
    ]
    assert rows[0].subject == "Welcome to Event Booking"


async def test_user_with_a_phone_is_also_told_by_sms(service):
    user = await known_user(service, phone="+351910000001")
    msg = h.booking_confirmed(user)
    await publish(service, msg)
    rows = await h.stored(service, source_message_id=msg.message_id)
    assert {(r.channel, r.recipient) for r in rows} == {
        ("email", f"u{user.hex[:10]}@example.com"),
        ("sms", "+351910000001"),
    }
    sms = next(r for r in rows if r.channel == "sms")
    assert "40.00 EUR" in sms.body and str(msg.booking_id) in sms.body


async def test_cancellation_with_refund_says_how_much_goes_back(service):
    user = await known_user(service)
    msg = h.booking_cancelled(user, reason="event_cancelled", refund_due=True)
    await publish(service, msg)
    [row] = await h.stored(service, source_message_id=msg.message_id)
    assert "because the event was cancelled" in row.body
    assert "A refund of 40.00 EUR is on its way" in row.body


@pytest.mark.parametrize(
    ("reason", "why"),
    [("organizer_refund", "The event's organizer refunded it."), ("user_request", "You cancelled")],
)
async def test_a_refund_notice_reads_as_sentences_whatever_the_reason(service, reason, why):
    user = await known_user(service)
    msg = h.payment_refunded(user, reason=reason, amount=Decimal("15.00"))
    await publish(service, msg)
    [row] = await h.stored(service, source_message_id=msg.message_id)
    assert "we refunded 15.00 EUR to the card you paid with. " in row.body
    assert why in row.body
    assert " ." not in row.body and "  " not in row.body


async def test_cancellation_after_failed_payment_is_left_to_the_payment_failed_notice(service):
    user = await known_user(service)
    msg = h.booking_cancelled(user, reason="payment_failed")
    await publish(service, msg)
    assert await h.stored(service, source_message_id=msg.message_id) == []


async def test_event_cancelled_tells_the_organizer(service):
    organizer = await known_user(service, role="organizer")
    msg = h.event_cancelled(organizer)
    async with TestRabbitBroker(service.broker) as br:
        await br.publish(msg, exchange=DOMAIN_EXCHANGE, routing_key="event_cancelled")
        service.subscribers["event_cancelled"].mock.assert_called_once()
    [row] = await h.stored(service, source_message_id=msg.message_id)
    assert (row.user_id, row.kind, row.status) == (organizer, "event_cancelled", "pending")
    assert "PyCon Lisbon" in row.subject and "venue flooded" in row.body
    assert str(msg.event_id) in row.body


async def test_notifications_channel_stores_the_text_under_the_requested_id(service):
    user = await known_user(service)
    msg = h.notification_requested(user, channel="push")
    async with TestRabbitBroker(service.broker) as br:
        await br.publish(msg, exchange=DOMAIN_EXCHANGE, routing_key="notifications")
        service.subscribers["notifications"].mock.assert_called_once()
    [row] = await h.stored(service, source_message_id=msg.message_id)
    assert row.id == msg.notification_id
    assert (row.kind, row.channel, row.status, row.recipient) == (
        "custom",
        "push",
        "pending",
        str(user),
    )
    assert (row.subject, row.body) == ("Doors open at 9", "Bring your ticket.")


async def test_sms_to_a_user_without_phone_is_recorded_as_failed(service):
    user = await known_user(service)
    msg = h.notification_requested(user, channel="sms")
    await publish(service, msg)
    [row] = await h.stored(service, source_message_id=msg.message_id)
    assert row.status == "failed" and "no address for sms" in row.last_error


async def test_notification_for_an_unknown_user_waits_for_their_contact(service):
    user = uuid.uuid4()
    msg = h.payment_failed(user)
    await publish(service, msg)
    [row] = await h.stored(service, source_message_id=msg.message_id)
    assert (row.status, row.recipient) == ("pending_contact", None)
    assert row.body.startswith("Hello,\n")

    # not released while the contact is unknown (and not yet expired)
    await handlers.address_waiting(service.db, contact_wait=timedelta(hours=1), batch_size=50)
    [row] = await h.stored(service, source_message_id=msg.message_id)
    assert row.status == "pending_contact"

    registered = h.user_registered(user)
    await publish(service, registered)
    await handlers.address_waiting(service.db, contact_wait=timedelta(hours=1), batch_size=50)
    [row] = await h.stored(service, source_message_id=msg.message_id)
    assert (row.status, row.recipient) == ("pending", registered.email)
    # rendered again now that the user is known: addressed by name, the facts unchanged
    assert row.body.startswith("Hello Ada Lovelace,\n")
    assert "40.00 EUR" in row.body and str(msg.booking_id) in row.body


async def test_waiting_notification_gains_its_sms_when_the_contact_has_a_phone(service):
    user = uuid.uuid4()
    confirmed = h.booking_confirmed(user)
    free_text = h.notification_requested(user, channel="sms")
    await publish(service, confirmed, free_text)
    await publish(service, h.user_registered(user, phone="+351910000003"))
    await handlers.address_waiting(service.db, contact_wait=timedelta(hours=1), batch_size=50)

    rows = await h.stored(service, source_message_id=confirmed.message_id)
    assert {(r.channel, r.status, r.recipient) for r in rows} == {
        ("email", "pending", f"u{user.hex[:10]}@example.com"),
        ("sms", "pending", "+351910000003"),
    }
    [sms] = [r for r in rows if r.channel == "sms"]
    assert str(confirmed.booking_id) in sms.body and "40.00 EUR" in sms.body
    # a free-text SMS stays one SMS
    rows = await h.stored(service, source_message_id=free_text.message_id)
    assert [(r.channel, r.status, r.recipient) for r in rows] == [
        ("sms", "pending", "+351910000003")
    ]


async def test_notification_whose_contact_never_arrives_fails_after_the_wait(service):
    msg = h.booking_expired(uuid.uuid4())
    await publish(service, msg)
    # other tests' waiting notifications share this database: sweep until none is left
    while await handlers.address_waiting(service.db, contact_wait=timedelta(0), batch_size=50):
        pass
    [row] = await h.stored(service, source_message_id=msg.message_id)
    assert row.status == "failed" and "never arrived" in row.last_error


@pytest.mark.parametrize(
    ("key", "payload"),
    [
        (
            "user_registered",
            lambda: h.user_registered().model_dump(mode="json") | {"email": "not-an-email"},
        ),
        ("payment_failed", lambda: h.payment_failed().model_dump(mode="json") | {"amount": "-1"}),
        (
            "booking_confirmed",
            lambda: {
                k: v
                for k, v in h.booking_confirmed().model_dump(mode="json").items()
                if k != "user_id"
            },
        ),
        (
            "notifications",
            lambda: h.notification_requested().model_dump(mode="json") | {"channel": "fax"},
        ),
    ],
)
async def test_payload_breaking_the_contract_is_rejected_and_stores_nothing(
    service, caplog, key, payload
):
    bad = payload()
    async with TestRabbitBroker(service.broker) as br:
        await br.publish(bad, exchange=DOMAIN_EXCHANGE, routing_key=key)
    assert any("dead-lettering" in r.getMessage() for r in caplog.records)
    assert await h.stored(service, source_message_id=uuid.UUID(bad["message_id"])) == []
