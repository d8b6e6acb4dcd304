"""Object-level authorization: two users and an admin on every route that takes an id, through
the gateway and directly at the service. The owner and an admin are allowed; anyone else gets
404 for a private resource (its existence is not revealed) and 403 for a public one (events);
lists never show another user's rows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import aiohttp
import pytest

from tests.reliability.flows import call_until_answered
from tests.support.api_bodies import event_body
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@dataclass
class Actor:
    name: str
    user_id: str
    token: str


@pytest.fixture(scope="module")
async def world(harness):
    """organizer `owner` and `rival`; customers `alice` (owns the bookings and the payment) and
    `mallory`; the admin. Returns the actors and the ids of alice's things."""
    from tests.e2e.conftest import Client

    async with aiohttp.ClientSession() as session:
        api = Client(session, harness.platform.gateway)
        actors = {}
        for name, role in (
            ("owner", "organizer"),
            ("rival", "organizer"),
            ("alice", "customer"),
            ("mallory", "customer"),
        ):
            user_id, _, token = await api.user(role)
            actors[name] = Actor(name, user_id, token)
        admin_token = await api.admin()
        actors["admin"] = Actor("admin", "", admin_token)
        owner, alice = actors["owner"].token, actors["alice"].token

        events = {}
        for key in ("main", "delete_by_owner", "delete_by_admin"):
            body = event_body(title=f"Authz {uuid.uuid4().hex[:6]}")
            status, event, _ = await api.call("POST", "/events/create", owner, json=body)
            assert status == 201, event
            events[key] = event["id"]

        async def book() -> str:
            status, booking = await call_until_answered(
                api,
                "POST",
                "/booking/create",
                alice,
                json={"event_id": events["main"], "quantity": 1},
            )
            assert status == 201, booking
            return booking["id"]

        bookings = {key: await book() for key in ("paid", "cancel_by_owner", "cancel_by_admin")}
        status, payment = await call_until_answered(
            api,
            "POST",
            "/payments/process",
            alice,
            json={
                "booking_id": bookings["paid"],
                "payment_method": {"type": "card", "token": "tok_visa"},
            },
        )
        assert status == 201, payment

        async def reported() -> bool:
            status, body, _ = await api.call(
                "GET", f"/analytics/report?event_id={events['main']}", owner
            )
            return status == 200 and body["totals"]["bookings_confirmed"] == 1

        await eventually(reported, timeout=20)  # analytics knows the event and its sale
        yield actors, events, bookings, payment["id"]


async def request(session, base: str, method: str, path: str, token: str, body=None):
    async with session.request(
        method, base + path, json=body, headers={"Authorization": f"Bearer {token}"}
    ) as r:
        text = await r.read()
        return r.status, (await r.json(content_type=None)) if text else None


async def test_id_routes_allow_owner_and_admin_and_hide_from_others(harness, world):
    actors, events, bookings, payment_id = world
    main, paid = events["main"], bookings["paid"]
    # (method, path, {actor: expected status}): actors not listed are not tried; the service
    # tried directly is the path's first segment
    matrix = [
        ("PUT", f"/events/{main}/update", {"owner": 200, "admin": 200, "rival": 403, "alice": 403}),
        ("GET", f"/events/{main}", {"owner": 200, "rival": 200, "alice": 200, "admin": 200}),
        (
            "DELETE",
            f"/events/{events['delete_by_owner']}",
            {"rival": 403, "mallory": 403, "owner": 200},
        ),
        ("DELETE", f"/events/{events['delete_by_admin']}", {"rival": 403, "admin": 200}),
        ("GET", f"/booking/{paid}", {"alice": 200, "admin": 200, "mallory": 404, "rival": 404}),
        (
            "POST",
            f"/booking/{bookings['cancel_by_owner']}/cancel",
            {"mallory": 404, "rival": 404, "alice": 200},
        ),
        ("POST", f"/booking/{bookings['cancel_by_admin']}/cancel", {"mallory": 404, "admin": 200}),
        (
            "GET",
            f"/payments/{payment_id}",
            {"alice": 200, "admin": 200, "mallory": 404, "owner": 404},
        ),
        ("POST", "/payments/process", {"mallory": 404}),
        (
            "GET",
            f"/analytics/report?event_id={main}",
            {"owner": 200, "admin": 200, "rival": 404, "alice": 403},
        ),
        (
            "GET",
            f"/analytics/report/daily?event_id={main}",
            {"owner": 200, "admin": 200, "rival": 404, "alice": 403},
        ),
        ("POST", "/notifications/send", {"mallory": 403, "owner": 403}),
    ]
    # the bodies of the requests that send one
    bodies = {
        f"/events/{main}/update": {"description": "changed"},
        "/payments/process": {
            "booking_id": bookings["cancel_by_owner"],
            "payment_method": {"type": "card", "token": "tok_visa"},
        },
        "/notifications/send": {
            "user_id": actors["alice"].user_id,
            "channel": "email",
            "subject": "hi",
            "body": "x",
        },
    }
    wrong, checked = [], 0
    async with aiohttp.ClientSession() as session:
        for method, path, expected in matrix:
            body = bodies.get(path)
            for where, base in (
                ("service", harness.url(path.split("/")[1])),
                ("gateway", harness.platform.gateway),
            ):
                for actor, want in expected.items():
                    if want == 200 and where == "gateway" and method in ("DELETE", "POST"):
                        want = (409, 200)  # already done directly at the service
                    status, answer = await request(
                        session, base, method, path, actors[actor].token, body
                    )
                    checked += 1
                    if status not in (want if isinstance(want, tuple) else (want,)):
                        wrong.append(
                            f"{actor}: {method} {path} at {where}: {status}, expected {want}: {answer}"
                        )
                    # a refusal says nothing about the resource (`instance` only echoes the request)
                    told = {k: v for k, v in (answer or {}).items() if k != "instance"}
                    if status in (403, 404) and any(
                        secret in str(told)
                        for secret in (actors["alice"].user_id, payment_id, *bookings.values())
                    ):
                        wrong.append(
                            f"{actor}: the 404 of {method} {path} at {where} leaks data: {answer}"
                        )
        # the refused attempts changed nothing
        status, booking = await request(
            session, harness.url("booking"), "GET", f"/booking/{paid}", actors["alice"].token
        )
        assert (status, booking["status"]) == (200, "confirmed")
        status, report = await request(
            session,
            harness.url("analytics"),
            "GET",
            f"/analytics/report?event_id={main}",
            actors["owner"].token,
        )
        assert report["totals"]["bookings_confirmed"] == 1
    print(f"\n[abuse] object authorization: {checked} requests, {len(wrong)} wrong")
    assert not wrong, "\n".join(wrong)


async def test_lists_never_show_another_users_rows(harness, world):
    actors, events, bookings, payment_id = world
    alice = actors["alice"]
    leaks = []
    async with aiohttp.ClientSession() as session:
        for where, base in (("gateway", harness.platform.gateway), ("service", None)):
            for path, service in (
                ("/booking?limit=100", "booking"),
                ("/payments?limit=100", "payments"),
                ("/notifications?limit=100", "notifications"),
            ):
                url = base or harness.url(service)
                if where == "gateway" and service == "payments":
                    continue  # GET /payments is not part of the public API (the gateway does not route it)
                for other in ("mallory", "rival", "owner"):
                    status, page = await request(session, url, "GET", path, actors[other].token)
                    assert status == 200, (where, path, status, page)
                    text = str(page)
                    for secret in (alice.user_id, payment_id, *bookings.values()):
                        if secret in text:
                            leaks.append(f"{other} sees {secret} in {path} at {where}")
                # alice sees her own (the lists are not simply empty)
                status, page = await request(session, url, "GET", path, alice.token)
                assert status == 200 and page["items"], (where, path, page)
                assert all(
                    item.get("user_id", alice.user_id) == alice.user_id for item in page["items"]
                )
        # organizers' reports are their own events only
        status, report = await request(
            session, harness.url("analytics"), "GET", "/analytics/report", actors["rival"].token
        )
        assert status == 200
        if events["main"] in str(report):
            leaks.append("rival's analytics report shows the owner's event")
    assert not leaks, "\n".join(leaks)
