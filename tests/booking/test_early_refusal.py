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
