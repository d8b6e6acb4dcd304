"""The early-refusal lane (``apps/booking/entrypoints/early_refusal.py``) answers exactly what
the route would: each request is sent to a replica with the lane and to one without it (same
database), and the answers must be equal; a spy on the lane records which requests it answered
itself. Real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest

from apps.booking.bootstrap import SPEC, build
from apps.booking.entrypoints.early_refusal import EarlyRefusal
from kit.metrics import REGISTRY
from kit.service import Service
from tests.booking.conftest import book_body, event_created, feed
from tests.conftest import http_client
from tests.support.tokens import bearer, mint

pytestmark = pytest.mark.integration


def build_without_lane(**overrides: Any) -> Service:
    return Service(dataclasses.replace(SPEC, http_middleware=()), None, **overrides)


@pytest.fixture
def answered(monkeypatch) -> list[bool]:
    """What the lane decided for each request it looked at (True: it answered)."""
    decisions: list[bool] = []
    original = EarlyRefusal._refused

    async def spy(self, *args: Any) -> bool:
        decisions.append(await original(self, *args))
        return decisions[-1]

    monkeypatch.setattr(EarlyRefusal, "_refused", spy)
    return decisions


def answer(resp: Any) -> tuple[int, Any, str | None, str | None]:
    return (
        resp.status_code,
        resp.json(),
        resp.headers.get("content-type"),
        resp.headers.get("www-authenticate"),
    )


async def test_the_lane_answers_what_the_route_answers(start_service, answered):
    token = mint()
    async with (
        start_service(build, booking_sweep_interval_seconds=0) as fast,
        start_service(build_without_lane, booking_sweep_interval_seconds=0) as slow,
    ):
        sold_out, open_event = (event_created(capacity=1) for _ in range(2))
        for event in (sold_out, open_event):
            await feed(fast, event)
        async with http_client(fast) as lane, http_client(slow) as route:
            assert (
                await route.post(
                    "/booking/create", json=book_body(sold_out), headers=bearer(mint())
                )
            ).status_code == 201
            assert (
                await lane.post("/booking/create", json=book_body(sold_out), headers=bearer(mint()))
            ).status_code == 409  # lane now knows
            answered.clear()

            cases: list[tuple[str, dict[str, Any], dict[str, str], bool]] = [
                ("sold out", book_body(sold_out), bearer(token), True),
                ("more than one booking may take", book_body(sold_out, 50), bearer(token), True),
                ("bad token", book_body(sold_out), bearer(token[:-4] + "AAAA"), False),
                ("no token", book_body(sold_out), {}, False),
                ("invalid quantity", book_body(sold_out, 0), bearer(token), False),
                ("unknown field", {**book_body(sold_out), "x": 1}, bearer(token), False),
                (
                    "unknown event",
                    {"event_id": str(uuid.uuid4()), "quantity": 1},
                    bearer(token),
                    False,
                ),
            ]
            for name, body, headers, lane_answers in cases:
                answered.clear()
                via_lane = await lane.post("/booking/create", json=body, headers=headers)
                via_route = await route.post("/booking/create", json=body, headers=headers)
                assert answer(via_lane) == answer(via_route), name
                assert answered[-1:] == ([True] if lane_answers else [False] if answered else []), (
                    name
                )

            # an Idempotency-Key goes to the route (its refusal is stored for replays)
            answered.clear()
            keyed = {**bearer(token), "Idempotency-Key": f"k-{uuid.uuid4()}"}
            first = await lane.post("/booking/create", json=book_body(sold_out), headers=keyed)
            assert first.status_code == 409 and answered == []
            replay = await lane.post("/booking/create", json=book_body(sold_out), headers=keyed)
            assert replay.headers.get("idempotent-replayed") == "true", replay.headers
            assert replay.json() == first.json()

            # seats left: the lane steps aside and the route holds them
            answered.clear()
            held = await lane.post(
                "/booking/create", json=book_body(open_event), headers=bearer(token)
            )
            assert held.status_code == 201, held.text
            assert answered == [False]


def requests_counted(status: int) -> float:
    return (
        REGISTRY.get_sample_value(
            "http_requests_total",
            {
                "service": "booking",
                "method": "POST",
                "route": "/booking/create",
                "status": str(status),
            },
        )
        or 0.0
    )


async def test_the_lanes_refusals_are_counted_under_the_routes_template(start_service, answered):
    """The app's routes list only wraps the included routers: the lane must still find its
    route, so its refusals are counted (and their spans named) as the route's, not unmatched."""
    lane_route = EarlyRefusal(app=None, service=None).route  # type: ignore[arg-type]
    assert lane_route.path == "/booking/create" and "POST" in lane_route.methods
    async with start_service(build, booking_sweep_interval_seconds=0) as svc:
        event = event_created(capacity=1)
        await feed(svc, event)
        async with http_client(svc) as client:
            assert (
                await client.post("/booking/create", json=book_body(event), headers=bearer(mint()))
            ).status_code == 201
            assert (  # the route refuses, and the replica learns the event is sold out
                await client.post("/booking/create", json=book_body(event), headers=bearer(mint()))
            ).status_code == 409
            before, unmatched = requests_counted(409), unmatched_count()
            answered.clear()
            resp = await client.post(
                "/booking/create", json=book_body(event), headers=bearer(mint())
            )
    assert resp.status_code == 409 and answered == [True]  # the lane answered it itself
    assert requests_counted(409) == before + 1
    assert unmatched_count() == unmatched


def unmatched_count() -> float:
    return sum(
        s.value
        for metric in REGISTRY.collect()
        if metric.name == "http_requests"
        for s in metric.samples
        if s.name == "http_requests_total" and s.labels.get("route") == "unmatched"
    )
