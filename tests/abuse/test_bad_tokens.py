"""Every bad bearer token gets 401 problem details, at the gateway and at every service directly
(services verify tokens themselves; they never trust the gateway), on every protected route."""

from __future__ import annotations

import uuid

import aiohttp
import pytest

from tests.abuse.tokens import bad_authorizations
from tests.support.api_bodies import event_body

pytestmark = pytest.mark.integration

SOME_ID = str(uuid.uuid4())
EVENT_BODY = event_body(title="Token test")
# (service, method, path, json body): every protected route of the public API
PROTECTED = [
    ("auth", "GET", "/auth/me", None),
    ("events", "POST", "/events/create", EVENT_BODY),
    ("events", "PUT", f"/events/{SOME_ID}/update", {"title": "x"}),
    ("events", "DELETE", f"/events/{SOME_ID}", None),
    ("booking", "POST", "/booking/create", {"event_id": SOME_ID, "quantity": 1}),
    ("booking", "GET", "/booking", None),
    ("booking", "GET", f"/booking/{SOME_ID}", None),
    ("booking", "POST", f"/booking/{SOME_ID}/cancel", None),
    (
        "payments",
        "POST",
        "/payments/process",
        {"booking_id": SOME_ID, "payment_method": {"type": "card", "token": "tok_visa"}},
    ),
    ("payments", "GET", "/payments", None),
    ("payments", "GET", f"/payments/{SOME_ID}", None),
    ("notifications", "GET", "/notifications", None),
    (
        "notifications",
        "POST",
        "/notifications/send",
        {"user_id": SOME_ID, "channel": "email", "subject": "s", "body": "b"},
    ),
    ("analytics", "GET", "/analytics/report", None),
    ("analytics", "GET", "/analytics/report/daily", None),
]


async def test_every_bad_token_is_401_at_the_gateway_and_at_every_service(harness, api):
    _, email, genuine = await api.user("customer")
    status, pair, _ = await api.call(
        "POST", "/auth/login", json={"email": email, "password": "correct horse battery staple 42"}
    )
    assert status == 200, pair
    cases = await bad_authorizations(harness, genuine, pair["refresh_token"])
    admin = await api.admin()

    wrong: list[str] = []
    checked = 0
    async with aiohttp.ClientSession() as session:

        async def call(base: str, method: str, path: str, body, authorization):
            headers = {"Authorization": authorization} if authorization is not None else {}
            # spoofed identity headers must not help either
            headers |= {"X-User-Id": SOME_ID, "X-User-Role": "admin"}
            async with session.request(method, base + path, json=body, headers=headers) as r:
                return r.status, r.headers.get("Content-Type", ""), await r.read()

        for service, method, path, body in PROTECTED:
            places = [(service, harness.url(service))]
            if (method, path) != (
                "GET",
                "/payments",
            ):  # not in the public API: the gateway has no route
                places.append(("gateway", harness.platform.gateway))
            for where, base in places:
                # the control: a genuine admin token is not refused here
                status, _, text = await call(base, method, path, body, f"Bearer {admin}")
                if status in (401, 500):
                    wrong.append(
                        f"genuine token: {method} {path} at {where} -> {status} {text[:200]!r}"
                    )
                for case, authorization in cases.items():
                    status, ctype, text = await call(base, method, path, body, authorization)
                    checked += 1
                    if status != 401 or "problem+json" not in ctype:
                        wrong.append(
                            f"{case}: {method} {path} at {where} -> {status} {ctype} {text[:150]!r}"
                        )
    print(
        f"\n[abuse] bad tokens: {checked} requests ({len(cases)} cases x {len(PROTECTED)} routes "
        f"x gateway+service), {len(wrong)} not refused with 401"
    )
    assert not wrong, "\n".join(wrong)
