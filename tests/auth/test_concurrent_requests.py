"""A slow request (a registration: Argon2 hashing, a database write) does not hold up the
others. Django runs sync views on ONE thread under ASGI unless told otherwise; the auth views
run on a bounded pool instead (auth.core.concurrency). Timing belongs to bench/auth_bench.py;
this proves the machine-independent property: a login completes while a registration is stuck."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from asgiref.sync import sync_to_async

from tests.auth.helpers import STRONG_PASSWORD, login, new_email, register

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@sync_to_async
def outbox_lock() -> psycopg.Connection:
    """Another session holding the outbox table: a registration (which writes its message there)
    waits for it; a login (which never touches it) need not."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    conn = psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"])
    conn.execute("LOCK TABLE outbox IN EXCLUSIVE MODE")
    return conn


async def test_a_login_completes_while_a_registration_is_stuck(client):
    user = await register(client)
    lock = await outbox_lock()
    try:
        stuck = asyncio.create_task(
            client.post("/auth/register", json={"email": new_email(), "password": STRONG_PASSWORD})
        )
        await asyncio.sleep(0.5)  # the registration is now waiting for the lock
        assert not stuck.done()
        resp = await asyncio.wait_for(login(client, user["email"]), timeout=10)
        assert resp.status_code == 200, resp.text
        assert not stuck.done()
    finally:
        await sync_to_async(lock.close)()  # rolls back, releasing the lock
    assert (await asyncio.wait_for(stuck, timeout=10)).status_code == 201


async def test_registrations_beyond_their_lane_wait_then_get_503_while_logins_go_on(
    auth_app, settings
):
    from tests.auth.conftest import auth_client

    settings.REGISTER_CONCURRENCY, settings.ADMISSION_WAIT_SECONDS = 1, 1.0
    async with auth_client(auth_app) as client:
        user = await register(client)
        lock = await outbox_lock()
        try:
            body = {"email": new_email(), "password": STRONG_PASSWORD}
            stuck = asyncio.create_task(client.post("/auth/register", json=body))
            await asyncio.sleep(0.5)
            # The lane is full: the next registration waits (without a thread), then is shed.
            shed = await asyncio.wait_for(
                client.post("/auth/register", json={**body, "email": new_email()}), timeout=10
            )
            assert shed.status_code == 503 and shed.headers["retry-after"] == "1"
            assert shed.headers["content-type"].startswith("application/problem+json")
            # Logins have their own lane.
            resp = await asyncio.wait_for(login(client, user["email"]), timeout=10)
            assert resp.status_code == 200, resp.text
        finally:
            await sync_to_async(lock.close)()
        assert (await asyncio.wait_for(stuck, timeout=10)).status_code == 201
