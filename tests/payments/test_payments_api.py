"""The payments service end to end against the real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from kit.consuming import consume_once
from apps.payments import handlers
from apps.payments.deps import provider_for
from contracts.messages import (
    BookingCancelled,
    BookingExpired,
    PaymentConfirmed,
    PaymentFailed,
    PaymentRefunded,
    RefundRequested,
)
from tests.payments.conftest import (
    owner,
    paid_booking,
    pay,
    booking_created,
    booking_ended,
    bound_queue,
    consumed,
    due_status,
    ledger_count,
    payable,
    publish,
    published,
    scalar,
)
from tests.support.tokens import bearer, mint
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

PROBLEMS = "https://eventbooking.dev/problems/"


async def test_visa_payment_succeeds_and_payment_confirmed_arrives_typed(payments, client, amqp):
    confirmed_q = await bound_queue(amqp, "payment_confirmed")
    created = await payable(payments, amqp, amount=Decimal("40.00"), currency="EUR")

    resp = await client.post(
        "/payments/process", json=pay(created.booking_id), headers=owner(created)
    )
    assert resp.status_code == 201, resp.text
    payment = resp.json()
    assert payment["status"] == "succeeded" and payment["failure_reason"] is None
    assert (payment["amount"], payment["currency"]) == ("40.00", "EUR")  # from the message
    assert payment["booking_id"] == str(created.booking_id)

    [raw] = await published(payments, confirmed_q)
    message = PaymentConfirmed.model_validate_json(raw.body)
    assert message.payment_id == uuid.UUID(payment["id"])
    assert (message.booking_id, message.user_id, message.event_id) == (
        created.booking_id,
        created.user_id,
        created.event_id,
    )
    assert message.amount == Decimal("40.00") and message.currency == "EUR"
    assert message.provider_reference.startswith("ch_sim_")
    assert message.correlation_id == created.correlation_id  # one saga
    assert message.producer == "payments" and raw.type == "payment_confirmed"

    # the payer and an admin see it; anybody else gets a 404
    path = f"/payments/{payment['id']}"
    assert (await client.get(path, headers=owner(created))).json() == payment
    assert (await client.get(path, headers=bearer(mint(role="admin")))).status_code == 200
    assert (await client.get(path, headers=bearer(mint()))).status_code == 404
    assert (await client.get(path)).status_code == 401
    listed = await client.get(
        "/payments", params={"booking_id": str(created.booking_id)}, headers=owner(created)
    )
    assert [p["id"] for p in listed.json()["items"]] == [payment["id"]]
    assert (await client.get("/payments", headers=bearer(mint()))).json()["items"] == []

    # already paid: 409 and no second charge
    charges = await ledger_count(payments)
    again = await client.post(
        "/payments/process", json=pay(created.booking_id), headers=owner(created)
    )
    assert again.status_code == 409
    assert again.json()["type"] == PROBLEMS + "booking-already-paid"
    assert again.headers["content-type"].startswith("application/problem+json")
    assert await ledger_count(payments) == charges


async def test_declined_card_is_a_failed_payment_and_publishes_payment_failed(
    payments, client, amqp
):
    failed_q = await bound_queue(amqp, "payment_failed")
    confirmed_q = await bound_queue(amqp, "payment_confirmed")
    created = await payable(payments, amqp)

    resp = await client.post(
        "/payments/process",
        json=pay(created.booking_id, "tok_chargeDeclined"),
        headers=owner(created),
    )
    assert resp.status_code == 201, resp.text
    assert (resp.json()["status"], resp.json()["failure_reason"]) == ("failed", "card_declined")

    [raw] = await published(payments, failed_q)
    message = PaymentFailed.model_validate_json(raw.body)
    assert message.booking_id == created.booking_id and message.failure_reason == "card_declined"
    assert await published(payments, confirmed_q) == []

    # booking cancels the booking on payment_failed: until then a retry is refused too
    retry = await client.post(
        "/payments/process", json=pay(created.booking_id), headers=owner(created)
    )
    assert retry.status_code == 409
    assert retry.json()["type"] == PROBLEMS + "booking-payment-failed"


@pytest.mark.parametrize(
    ("ending", "first", "problem"),
    [
        (BookingExpired, "created", "booking-expired"),
        (BookingCancelled, "created", "booking-cancelled"),
        (BookingExpired, "ended", "booking-expired"),  # out of order: dead before it was created
        (BookingCancelled, "ended", "booking-cancelled"),
    ],
)
async def test_expired_or_cancelled_booking_is_not_payable_in_any_order(
    payments, client, amqp, ending, first, problem
):
    created = booking_created()
    ended = booking_ended(created, ending)
    for message in (created, ended) if first == "created" else (ended, created):
        await publish(amqp, message)
        await eventually(
            lambda m=message: consumed(payments, f"payments.{m.routing_key}", m.message_id)
        )
    assert await due_status(payments, created.booking_id) == (
        "expired" if ending is BookingExpired else "cancelled"
    )

    charges = await ledger_count(payments)
    resp = await client.post(
        "/payments/process", json=pay(created.booking_id), headers=owner(created)
    )
    assert resp.status_code == 409, resp.text
    assert resp.json()["type"] == PROBLEMS + problem
    assert await ledger_count(payments) == charges


async def test_hold_past_its_expiry_is_not_payable_even_before_booking_expires_it(
    payments, client, amqp
):
    created = await payable(payments, amqp, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    resp = await client.post(
        "/payments/process", json=pay(created.booking_id), headers=owner(created)
    )
    assert resp.status_code == 409 and resp.json()["type"] == PROBLEMS + "booking-expired"


async def test_unknown_and_somebody_elses_booking_are_the_same_404(payments, client, amqp):
    created = await payable(payments, amqp)
    charges = await ledger_count(payments)
    unknown = await client.post("/payments/process", json=pay(uuid.uuid4()), headers=owner(created))
    theirs = await client.post(
        "/payments/process", json=pay(created.booking_id), headers=bearer(mint())
    )
    admin = await client.post(
        "/payments/process", json=pay(created.booking_id), headers=bearer(mint(role="admin"))
    )
    assert unknown.status_code == theirs.status_code == admin.status_code == 404
    assert unknown.json()["type"] == theirs.json()["type"] == PROBLEMS + "booking-not-found"
    assert unknown.json()["detail"] == theirs.json()["detail"]  # nothing tells them apart
    assert await ledger_count(payments) == charges
    assert await due_status(payments, created.booking_id) == "open"


@pytest.mark.parametrize(
    ("payment_method", "field"),
    [
        ({"type": "card", "token": "tok_unknown"}, "body.payment_method.token"),
        ({"type": "card", "token": ""}, "body.payment_method.token"),
        ({"type": "iban", "token": "tok_visa"}, "body.payment_method.type"),
    ],
)
async def test_invalid_payment_method_is_422_and_charges_nothing(
    payments, client, amqp, payment_method, field
):
    created = await payable(payments, amqp)
    charges = await ledger_count(payments)
    body = {"booking_id": str(created.booking_id), "payment_method": payment_method}
    resp = await client.post("/payments/process", json=body, headers=owner(created))
    assert resp.status_code == 422, resp.text
    assert field in {e["field"] for e in resp.json()["errors"]}
    if payment_method["token"] == "tok_unknown":  # refused by the provider, not the schema
        assert resp.json()["type"] == PROBLEMS + "invalid-payment-method"
        assert resp.json()["title"] == "Unprocessable Content"
    assert await ledger_count(payments) == charges
    # the booking is still payable with a good card
    ok = await client.post(
        "/payments/process", json=pay(created.booking_id), headers=owner(created)
    )
    assert ok.status_code == 201 and ok.json()["status"] == "succeeded"


async def test_bad_requests_are_problem_details(client):
    token = bearer(mint())
    assert (await client.post("/payments/process", json=pay(uuid.uuid4()))).status_code == 401
    for body in (
        {"booking_id": "nope", "payment_method": {"type": "card", "token": "tok_visa"}},
        {"booking_id": str(uuid.uuid4())},
        pay(uuid.uuid4()) | {"amount": "1.00"},
    ):  # a client never sets the amount
        resp = await client.post("/payments/process", json=body, headers=token)
        assert resp.status_code == 422 and resp.json()["errors"], resp.text
    malformed = await client.post(
        "/payments/process",
        content=b'{"booking_id": ',
        headers=token | {"content-type": "application/json"},
    )
    assert malformed.status_code == 400
    assert (await client.get("/payments/not-a-uuid", headers=token)).status_code == 422


async def test_idempotency_key_replays_the_first_response_without_a_new_charge(
    payments, client, amqp
):
    confirmed_q = await bound_queue(amqp, "payment_confirmed")
    created = await payable(payments, amqp)
    charges = await ledger_count(payments)
    headers = owner(created) | {"Idempotency-Key": "pay-once"}

    first = await client.post("/payments/process", json=pay(created.booking_id), headers=headers)
    replay = await client.post("/payments/process", json=pay(created.booking_id), headers=headers)
    assert first.status_code == replay.status_code == 201
    assert replay.json() == first.json()
    assert replay.headers.get("idempotent-replayed") == "true"
    assert await ledger_count(payments) == charges + 1

    other_body = await client.post(
        "/payments/process", json=pay(created.booking_id, "tok_chargeDeclined"), headers=headers
    )
    assert other_body.status_code == 422
    assert other_body.json()["type"] == PROBLEMS + "idempotency-key-reused"
    # keys are per user: the same key from somebody else is their own (and finds no booking)
    stranger = await client.post(
        "/payments/process",
        json=pay(created.booking_id),
        headers=bearer(mint()) | {"Idempotency-Key": "pay-once"},
    )
    assert stranger.status_code == 404
    assert len(await published(payments, confirmed_q)) == 1
    assert await ledger_count(payments) == charges + 1


@pytest.mark.parametrize("with_key", [True, False], ids=["same-key", "no-key"])
async def test_concurrent_identical_requests_charge_once(payments, client, amqp, with_key):
    confirmed_q = await bound_queue(amqp, "payment_confirmed")
    created = await payable(payments, amqp)
    charges = await ledger_count(payments)
    headers = owner(created) | ({"Idempotency-Key": str(uuid.uuid4())} if with_key else {})

    responses = await asyncio.gather(
        *(
            client.post("/payments/process", json=pay(created.booking_id), headers=headers)
            for _ in range(20)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    if with_key:  # every duplicate gets the first response
        assert statuses == [201] * 20
        assert len({r.json()["id"] for r in responses}) == 1
    else:  # one charges, the others find the booking paid
        assert statuses == [201] + [409] * 19, [
            r.text for r in responses if r.status_code not in (201, 409)
        ]
    assert await ledger_count(payments) == charges + 1
    [raw] = await published(payments, confirmed_q)
    assert PaymentConfirmed.model_validate_json(raw.body).booking_id == created.booking_id


async def test_refund_requested_twice_refunds_once(payments, client, amqp):
    refunded_q = await bound_queue(amqp, "payment_refunded")
    created, payment_id = await paid_booking(payments, client, amqp)
    refunds = await ledger_count(payments, "refund")

    command = RefundRequested(
        booking_id=created.booking_id,
        user_id=created.user_id,
        payment_id=payment_id,
        reason="user_request",
        producer="booking",
        correlation_id=created.correlation_id,
    )
    resent = command.model_copy(update={"message_id": uuid.uuid4()})  # booking asked again
    for message in (command, command, resent):  # the first also delivered twice
        await publish(amqp, message)
    for message in (command, resent):
        await eventually(
            lambda m=message: consumed(payments, "payments.refund_requested", m.message_id)
        )

    [raw] = await published(payments, refunded_q)
    message = PaymentRefunded.model_validate_json(raw.body)
    assert message.payment_id == payment_id and message.amount == Decimal("40.00")
    assert message.reason == "user_request" and message.provider_reference.startswith("re_sim_")
    assert message.causation_id == command.message_id
    assert message.correlation_id == created.correlation_id
    assert await ledger_count(payments, "refund") == refunds + 1
    got = (await client.get(f"/payments/{payment_id}", headers=owner(created))).json()
    assert got["status"] == "refunded" and got["refunded_at"]


async def test_concurrent_refund_commands_refund_once(payments, client, amqp):
    refunded_q = await bound_queue(amqp, "payment_refunded")
    created, payment_id = await paid_booking(payments, client, amqp)
    refunds = await ledger_count(payments, "refund")
    commands = [
        RefundRequested(
            booking_id=created.booking_id,
            user_id=created.user_id,
            reason="event_cancelled",
            producer="booking",
        )
        for _ in range(5)
    ]
    handler = handlers.refund_payment(provider_for(payments))
    done = await asyncio.gather(
        *(consume_once(payments.db, "payments.refund_requested", c, handler) for c in commands)
    )
    assert done == [True] * 5  # five distinct commands, each handled at the same time...
    assert await ledger_count(payments, "refund") == refunds + 1  # ...one refund
    [raw] = await published(payments, refunded_q)
    assert PaymentRefunded.model_validate_json(raw.body).payment_id == payment_id
    assert (
        await scalar(payments, "SELECT status FROM payments WHERE id = :p", p=payment_id)
        == "refunded"
    )


async def test_duplicated_booking_created_changes_nothing(payments, client, amqp):
    created = await payable(payments, amqp)
    due_before = await scalar(
        payments,
        "SELECT row_to_json(d)::text FROM booking_dues d WHERE booking_id = :b",
        b=created.booking_id,
    )
    same_again = created
    other_copy = created.model_copy(update={"message_id": uuid.uuid4(), "amount": Decimal("1.00")})
    for message in (same_again, other_copy):
        await publish(amqp, message)
    await eventually(lambda: consumed(payments, "payments.booking_created", other_copy.message_id))
    assert (
        await scalar(
            payments,
            "SELECT row_to_json(d)::text FROM booking_dues d WHERE booking_id = :b",
            b=created.booking_id,
        )
        == due_before
    )
    resp = await client.post(
        "/payments/process", json=pay(created.booking_id), headers=owner(created)
    )
    assert resp.json()["amount"] == "40.00"


@pytest.fixture
def spans():
    """Spans recorded by this process's tracer provider from now on."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from observability.tracing import configure_tracing

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = configure_tracing("payments")
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


async def test_process_route_span_carries_booking_user_and_event_ids(spans, payments, client, amqp):
    created = await payable(payments, amqp)
    resp = await client.post(
        "/payments/process", json=pay(created.booking_id), headers=owner(created)
    )
    assert resp.status_code == 201
    tagged = [
        s.attributes
        for s in spans.get_finished_spans()
        if (s.attributes or {}).get("booking.id") == str(created.booking_id)
    ]
    assert tagged, [s.name for s in spans.get_finished_spans()]
    assert tagged[0]["user.id"] == str(created.user_id)
    assert tagged[0]["event.id"] == str(created.event_id)
