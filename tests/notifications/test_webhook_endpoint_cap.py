"""One owner (organizer or admin) has at most MAX_WEBHOOKS_PER_OWNER webhook endpoints: one
more is refused with 409 ``webhook-limit-reached`` and nothing is stored, also when several
registrations race. On the real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import pytest

from apps.notifications.bootstrap import build
from tests.conftest import http_client
from tests.support.tokens import bearer, mint

pytestmark = pytest.mark.integration

CAP = 3


@pytest.fixture(scope="module")
async def service(start_service, receiver):
    async with start_service(
        build,
        connect_broker=False,
        database_prefix=os.environ["DATABASE_PREFIX"] + "cap_",
        webhook_allowed_hosts=f"127.0.0.1:{receiver.port}",
        max_webhooks_per_owner=CAP,
        webhook_worker=False,
        delivery_worker=False,
    ) as svc:
        yield svc


async def register(service: Any, receiver: Any, owner: uuid.UUID, role: str = "organizer") -> Any:
    async with http_client(service) as client:
        return await client.post(
            "/notifications/webhooks",
            json={"url": receiver.url("ok-cap"), "events": ["booking_confirmed"]},
            headers=bearer(mint(owner, role)),
        )


async def endpoints_of(service: Any, owner: uuid.UUID, role: str = "organizer") -> list[Any]:
    async with http_client(service) as client:
        r = await client.get(
            "/notifications/webhooks", params={"limit": 100}, headers=bearer(mint(owner, role))
        )
    assert r.status_code == 200, r.text
    return r.json()["items"]


@pytest.mark.parametrize("role", ["organizer", "admin"])
async def test_one_endpoint_over_the_cap_is_refused_and_nothing_is_stored(service, receiver, role):
    owner = uuid.uuid4()
    for _ in range(CAP):
        assert (await register(service, receiver, owner, role)).status_code == 201
    r = await register(service, receiver, owner, role)
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["type"].endswith("/webhook-limit-reached")
    assert problem["limit"] == CAP
    assert len(await endpoints_of(service, owner, role)) == CAP
    # Somebody else's endpoints do not count.
    assert (await register(service, receiver, uuid.uuid4(), role)).status_code == 201


async def test_a_deleted_endpoint_frees_its_place(service, receiver):
    owner = uuid.uuid4()
    ids = [(await register(service, receiver, owner)).json()["id"] for _ in range(CAP)]
    assert (await register(service, receiver, owner)).status_code == 409
    async with http_client(service) as client:
        r = await client.delete(
            f"/notifications/webhooks/{ids[0]}", headers=bearer(mint(owner, "organizer"))
        )
    assert r.status_code == 204
    assert (await register(service, receiver, owner)).status_code == 201


async def test_racing_registrations_never_exceed_the_cap(service, receiver):
    owner = uuid.uuid4()
    answers = await asyncio.gather(*(register(service, receiver, owner) for _ in range(CAP + 3)))
    assert sorted(r.status_code for r in answers) == [201] * CAP + [409] * 3
    assert len(await endpoints_of(service, owner)) == CAP
