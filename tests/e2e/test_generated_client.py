"""The README's walk-through, through the typed Python client that ``make sdk`` generates with
openapi-python-client from the gateway's merged OpenAPI document, against the running platform:
register an organizer and a customer, log in, create a two-type event, book a two-type order
with attendees, pay it, see it confirmed, list the event's bookings, refund part of it, read
the report and the customer's notifications.

The client is generated here from the document built in-process (``tools.openapi_doc``), and
that document is first checked to be the one the running gateway serves, operation by
operation, so what is proven is what ``make sdk`` gives a client developer."""

from __future__ import annotations

import importlib
import sys
import uuid
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from tests.support.waiting import eventually
from tools.openapi_doc import PACKAGE, generate_sdk, merged_document

pytestmark = pytest.mark.integration

APIS = {
    "auth": ["auth_register", "auth_login"],
    "events": ["events_create"],
    "booking": ["bookings_create", "bookings_get", "bookings_refund", "bookings_list_for_event"],
    "payments": ["payments_process"],
    "analytics": ["reports_get"],
    "notifications": ["notifications_list"],
}


@pytest.fixture(scope="module")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    out: Path = tmp_path_factory.mktemp("sdk")
    generate_sdk(out)  # raises on any generator warning
    sys.path.insert(0, str(out))
    try:
        ns = SimpleNamespace(
            client=importlib.import_module(PACKAGE),
            models=importlib.import_module(f"{PACKAGE}.models"),
        )
        for group, names in APIS.items():
            for name in names:
                setattr(ns, name, importlib.import_module(f"{PACKAGE}.api.{group}.{name}"))
        yield ns
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m.startswith(PACKAGE)]:
            del sys.modules[name]


def _operations(doc: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {
        (method, path): op["operationId"]
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and "operationId" in op
    }


async def test_the_generated_client_matches_what_the_gateway_serves(platform) -> None:
    async def served() -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{platform.gateway}/openapi.json") as resp:
                assert resp.status == 200
                return dict(await resp.json())

    # a service slow to answer (a loaded machine) is left out for a moment: ask again
    live = await eventually(served, until=lambda d: not d["x-services"]["missing"], timeout=60)
    assert _operations(live) == _operations(merged_document())
    assert live["components"]["schemas"] == merged_document()["components"]["schemas"]


async def _until_known(call: Any) -> Any:
    """Booking and payments learn of events and bookings from the bus: 404 until then."""
    return await eventually(call, until=lambda r: r.status_code != HTTPStatus.NOT_FOUND, timeout=15)


async def test_the_readme_walkthrough_through_the_generated_client(platform, sdk) -> None:
    m = sdk.models
    anonymous = sdk.client.Client(base_url=platform.gateway, raise_on_unexpected_status=True)
    run = uuid.uuid4().hex[:8]
    org_email, ada_email = f"org-{run}@example.com", f"ada-{run}@example.com"

    # register an organizer and a customer, log both in
    r = await sdk.auth_register.asyncio_detailed(
        client=anonymous,
        body=m.RegisterRequest(
            email=org_email,
            password="a long enough passphrase",
            full_name="Olga",
            role=m.RoleEnum.ORGANIZER,
        ),
    )
    assert r.status_code == HTTPStatus.CREATED and isinstance(r.parsed, m.User), r.content
    r = await sdk.auth_register.asyncio_detailed(
        client=anonymous,
        body=m.RegisterRequest(
            email=ada_email, password="another long passphrase", full_name="Ada Lovelace"
        ),
    )
    assert r.status_code == HTTPStatus.CREATED and r.parsed.role == m.RoleEnum.CUSTOMER
    again = await sdk.auth_register.asyncio_detailed(
        client=anonymous, body=m.RegisterRequest(email=ada_email, password="whatever long 1")
    )
    assert again.status_code == HTTPStatus.CONFLICT and isinstance(again.parsed, m.Problem)

    async def login(email: str, password: str) -> Any:
        r = await sdk.auth_login.asyncio_detailed(
            client=anonymous, body=m.LoginRequest(email=email, password=password)
        )
        assert isinstance(r.parsed, m.TokenPair), r.content
        return sdk.client.AuthenticatedClient(
            base_url=platform.gateway, token=r.parsed.access_token
        )

    org = await login(org_email, "a long enough passphrase")
    ada = await login(ada_email, "another long passphrase")

    # a two-type event with a refund policy
    r = await sdk.events_create.asyncio_detailed(
        client=org,
        body=m.EventCreate.from_dict(
            {
                "title": "PyCon Lisbon",
                "venue": "Altice Arena",
                "starts_at": "2027-05-01T09:00:00Z",
                "capacity": 1000,
                "currency": "EUR",
                "ticket_types": [
                    {"name": "Early bird", "price": "15.00", "capacity": 200},
                    {"name": "Regular", "price": "25.00"},
                ],
                "refund_policy": {
                    "self_service": True,
                    "deadline_hours_before_start": 48,
                    "fee_percent": "10",
                },
            }
        ),
    )
    assert r.status_code == HTTPStatus.CREATED and isinstance(r.parsed, m.EventPublic), r.content
    event = r.parsed
    early, regular = event.ticket_types

    # an order of three tickets of two types, with attendees
    order = m.BookingCreate(
        event_id=event.id,
        lines=[
            m.OrderLine(ticket_type_id=early.id, quantity=2),
            m.OrderLine(ticket_type_id=regular.id, quantity=1),
        ],
        attendees=[
            m.AttendeeIn(name="Ada Lovelace"),
            m.AttendeeIn(name="Charles Babbage"),
            m.AttendeeIn(name="Mary Somerville"),
        ],
    )
    r = await _until_known(
        lambda: sdk.bookings_create.asyncio_detailed(
            client=ada, body=order, idempotency_key=f"order-{event.id}"
        )
    )
    assert r.status_code == HTTPStatus.CREATED and isinstance(r.parsed, m.BookingView), r.content
    booking = r.parsed
    assert (booking.status, booking.amount, booking.quantity) == (
        m.BookingViewStatus.PENDING,
        "55.00",
        3,
    )
    assert sorted((line.name, line.quantity) for line in booking.lines) == [
        ("Early bird", 2),
        ("Regular", 1),
    ]

    # pay it; booking hears of the payment and confirms
    r = await _until_known(
        lambda: sdk.payments_process.asyncio_detailed(
            client=ada,
            body=m.PaymentProcess(
                booking_id=booking.id,
                payment_method=m.CardPaymentMethod(type_="card", token="tok_visa"),
            ),
            idempotency_key=f"pay-{booking.id}",
        )
    )
    assert isinstance(r.parsed, m.PaymentPublic), r.content
    assert r.parsed.status == m.PaymentPublicStatus.SUCCEEDED

    async def seen_by_ada() -> Any:
        return (await sdk.bookings_get.asyncio_detailed(booking.id, client=ada)).parsed

    confirmed = await eventually(
        seen_by_ada, until=lambda b: b.status == m.BookingViewStatus.CONFIRMED, timeout=15
    )
    assert confirmed.payment_id == r.parsed.id

    # the organizer's list of the event's bookings, with attendees
    r = await sdk.bookings_list_for_event.asyncio_detailed(event.id, client=org)
    assert isinstance(r.parsed, m.PageBookingView), r.content
    [listed] = r.parsed.items
    assert sorted(a.name for a in listed.attendees) == [
        "Ada Lovelace",
        "Charles Babbage",
        "Mary Somerville",
    ]
    # ... which the customer may not see: a typed problem
    r = await sdk.bookings_list_for_event.asyncio_detailed(event.id, client=ada)
    assert r.status_code in (HTTPStatus.FORBIDDEN, HTTPStatus.NOT_FOUND)
    assert isinstance(r.parsed, m.Problem) and r.parsed.type_.startswith("https://")

    # a partial refund by the organizer
    r = await sdk.bookings_refund.asyncio_detailed(
        booking.id, client=org, body=m.RefundCreate(amount="15.00")
    )
    assert r.status_code == HTTPStatus.OK and isinstance(r.parsed, m.BookingView), r.content
    refunded = await eventually(
        seen_by_ada,
        until=lambda b: bool(b.refund) and b.refund.status.value == "succeeded",
        timeout=15,
    )
    assert refunded.refund.amount == "15.00"

    # the report: revenue 55.00, refunds 15.00, per ticket type
    async def report() -> Any:
        return (await sdk.reports_get.asyncio_detailed(client=org, event_id=event.id)).parsed

    counted = await eventually(
        report,
        until=lambda rep: isinstance(rep, m.ReportPublic)
        and rep.totals.refunds.to_dict().get("EUR") == "15.00",
        timeout=20,
    )
    assert counted.totals.revenue.to_dict() == {"EUR": "55.00"}
    [figures] = counted.events
    assert {t.to_dict()["name"] for t in figures.ticket_types} == {"Early bird", "Regular"}

    # the customer's notifications: welcome, confirmed, refunded
    async def kinds() -> set[str]:
        page = (await sdk.notifications_list.asyncio_detailed(client=ada, limit=50)).parsed
        return {n.kind for n in page.items}

    seen = await eventually(
        kinds,
        until=lambda k: {"booking_confirmed", "payment_refunded"} <= k,
        timeout=20,
    )
    assert len(seen) >= 3, seen
