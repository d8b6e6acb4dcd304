"""One booking, one trace: from the gateway through the outbox and the queues to every consumer.

Real processes export their spans over OTLP to the in-test receiver; the client starts the
trace with its own W3C ``traceparent`` and finds it again in ``X-Trace-Id``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import pytest

from tests.e2e.test_platform_flows import book, booked, create_event, pay

pytestmark = pytest.mark.integration

CONSUMER, PRODUCER = 5, 4  # OTLP span kinds


def client_traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def roots(spans) -> set[tuple[str, str | None]]:
    """(service, parent) of every span whose parent is not in the trace.

    The client may have retried (a 404 while booking had not yet heard of the event), so there
    can be several gateway spans, all children of the client's span.
    """
    ids = {s.span_id for s in spans}
    return {(s.service, s.parent_id) for s in spans if s.parent_id not in ids}


def assert_one_tree(spans, client_span_id: str) -> None:
    # no orphans: only the gateway's server spans hang off the client's span
    assert roots(spans) == {("gateway", client_span_id)}, roots(spans)


def consumed_by(spans, service: str) -> bool:
    return any(s.service == service and s.kind == CONSUMER for s in spans)


async def whole_trace(platform, trace_id: str, client_span: str, arrived: Callable) -> list:
    """The trace's spans, once ``arrived(spans)`` holds and every parent has arrived (its only
    roots are the gateway's spans, children of the client's)."""

    def complete(all_spans) -> bool:
        spans = [s for s in all_spans if s.trace_id == trace_id]
        return arrived(spans) and roots(spans) == {("gateway", client_span)}

    await platform.otlp.wait_for(complete)
    return platform.otlp.trace(trace_id)


async def test_booking_create_is_one_trace_across_gateway_outbox_and_consumers(platform, api):
    _, _, organizer = await api.user("organizer")
    _, _, customer = await api.user("customer")
    event = await create_event(api, organizer)
    trace_id, client_span, traceparent = client_traceparent()

    status, booking, headers = await book(
        api, customer, event["id"], 1, headers={"traceparent": traceparent}
    )
    assert status == 201
    assert headers["X-Trace-Id"] == trace_id

    spans = await whole_trace(
        platform,
        trace_id,
        client_span,
        lambda spans: consumed_by(spans, "payments") and consumed_by(spans, "analytics"),
    )
    services = {s.service for s in spans}
    assert {"gateway", "booking", "payments", "analytics"} <= services
    assert any(s.service == "booking" and s.kind == PRODUCER for s in spans)  # outbox publish
    assert any(s.attributes.get("booking.id") == booking["id"] for s in spans)
    assert_one_tree(spans, client_span)


async def test_payment_is_one_trace_through_confirmation_notification_and_analytics(platform, api):
    _, _, organizer = await api.user("organizer")
    _, _, customer = await api.user("customer")
    event = await create_event(api, organizer)
    booking = await booked(api, customer, event["id"], 1)
    trace_id, client_span, traceparent = client_traceparent()

    status, payment, headers = await pay(
        api, customer, booking["id"], headers={"traceparent": traceparent}
    )
    assert status in (200, 201) and payment["status"] == "succeeded"
    assert headers["X-Trace-Id"] == trace_id

    # payment_confirmed -> booking; booking_confirmed -> notifications and analytics
    spans = await whole_trace(
        platform,
        trace_id,
        client_span,
        lambda spans: (
            consumed_by(spans, "booking")
            and consumed_by(spans, "notifications")
            and sum(s.service == "analytics" and s.kind == CONSUMER for s in spans) >= 2
        ),
    )
    assert {"gateway", "payments", "booking", "notifications", "analytics"} <= {
        s.service for s in spans
    }
    assert any(s.attributes.get("booking.id") == booking["id"] for s in spans)
    assert_one_tree(spans, client_span)
