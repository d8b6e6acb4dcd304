"""What schemathesis found, pinned down: each was a 500 for bad input, each is now a 4xx.

* a NUL character in client text (``POST /notifications/send`` body; every FastAPI service had
  the hole: PostgreSQL cannot store NUL in text) -> 422 naming the field;
* ``GET /analytics/report/daily?to=<a year-1 date>`` (date overflow) -> 422, and a bare number
  as ``from``/``to`` (read as a Unix time, not the documented ISO 8601) -> 422;
* ``PUT /internal/events/{id}/capacity`` with a capacity beyond int32 -> 422.
"""

from __future__ import annotations

import uuid

import pytest

from apps.analytics.bootstrap import build as build_analytics
from apps.booking.bootstrap import build as build_booking
from apps.events.bootstrap import build as build_events
from apps.notifications.bootstrap import build as build_notifications
from tests.conftest import http_client
from tests.support.api_bodies import event_body
from tests.support.tokens import bearer, mint

pytestmark = pytest.mark.integration


async def test_nul_in_a_body_or_a_query_is_a_422_naming_the_field(start_service):
    async with start_service(build_events) as events, http_client(events) as client:
        organizer = bearer(mint(role="organizer"))
        body = event_body(title="Nul\u0000Fest")
        refused = await client.post("/events/create", json=body, headers=organizer)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in refused.json()["errors"]] == ["body.title"]

        listed = await client.get("/events?cursor=%00")
        assert listed.status_code == 422 and listed.json()["errors"][0]["field"] == "query.cursor"

        # an escaped backslash followed by "u0000" is ordinary text, and the body still arrives
        body["title"] = "Backslash \\u0000 is fine"
        created = await client.post("/events/create", json=body, headers=organizer)
        assert created.status_code == 201, created.text
        assert created.json()["title"] == "Backslash \\u0000 is fine"


async def test_admin_notification_with_a_nul_is_refused(start_service):
    async with start_service(build_notifications) as svc, http_client(svc) as client:
        sent = await client.post(
            "/notifications/send",
            headers=bearer(mint(role="admin")),
            json={
                "user_id": "8d3c9a52-5e2b-4a8e-9c77-1f2e3d4c5b6a",
                "channel": "email",
                "subject": "hi",
                "body": "a\u0000b",
            },
        )
        assert sent.status_code == 422, sent.text
        assert sent.json()["errors"][0]["field"] == "body.body"


async def test_analytics_windows_out_of_range_or_not_iso_are_422(start_service):
    async with start_service(build_analytics) as svc, http_client(svc) as client:
        admin = bearer(mint(role="admin"))
        early = await client.get("/analytics/report/daily?to=0001-01-02T00:00:00Z", headers=admin)
        assert early.status_code == 422, early.text
        for query in ("from=0", "to=1700000000", "to=-5.5"):
            numeric = await client.get(f"/analytics/report?{query}", headers=admin)
            assert numeric.status_code == 422, (query, numeric.text)
        fine = await client.get("/analytics/report?from=2026-01-01T00:00:00Z", headers=admin)
        assert fine.status_code == 200, fine.text


async def test_capacity_beyond_the_integer_column_is_422(start_service):
    async with (
        start_service(build_booking, booking_sweep_interval_seconds=0) as svc,
        http_client(svc) as client,
    ):
        resp = await client.put(
            f"/internal/events/{uuid.uuid4()}/capacity",
            json={"capacity": 71216387816105},
            headers=bearer(mint(role="admin")),
        )
        assert resp.status_code == 422, resp.text
