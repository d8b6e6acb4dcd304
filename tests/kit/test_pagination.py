"""Cursors are opaque to clients, but a forged one is a 400, never a 500."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from kit.pagination import Limit, decode_position, encode_cursor, page_of
from kit.problems import BadRequest


def test_a_cursor_round_trips_to_the_same_position():
    when, ident = datetime(2027, 5, 1, 9, tzinfo=UTC), uuid.uuid4()
    items, cursor = page_of([(when, ident), (when, uuid.uuid4())], 1, lambda x: x)
    assert items == [(when, ident)] and decode_position(cursor) == (when, ident)


@pytest.mark.parametrize(
    "forged",
    [
        encode_cursor("0001-01-01T00:00:00+05:00", uuid.uuid4()),  # no UTC equivalent
        encode_cursor("9999-12-31T23:00:00-05:00", uuid.uuid4()),
        encode_cursor("2027-05-01T09:00:00", uuid.uuid4()),  # no time zone
        encode_cursor("yesterday", uuid.uuid4()),
        encode_cursor("2027-05-01T09:00:00Z", "not-a-uuid"),
        "!!",
    ],
)
def test_a_forged_cursor_is_a_bad_request(forged):
    with pytest.raises(BadRequest):
        decode_position(forged)


@pytest.mark.parametrize(
    ("asked", "status", "given"),
    [("5", 200, 5), ("100", 200, 100), ("1000", 200, 100), ("0", 422, None), ("ten", 422, None)],
)
async def test_a_page_size_above_the_maximum_is_capped_not_refused(asked, status, given):
    app = FastAPI()

    @app.get("/items")
    async def items(limit: Limit = 20) -> dict[str, int]:
        return {"limit": limit}

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        resp = await client.get("/items", params={"limit": asked})
    assert resp.status_code == status
    if given is not None:
        assert resp.json() == {"limit": given}
