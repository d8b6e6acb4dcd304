"""Registration publishes ``user_registered`` through the transactional outbox: the user row and
the outbox row commit or roll back together, and the kit's relay delivers the typed message."""

from __future__ import annotations

import json
import uuid

import pytest

from contracts.messages import UserRegistered
from tests.support.bus import bound_queue
from tests.auth.helpers import STRONG_PASSWORD, assert_problem, db_rows, new_email, register

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


async def test_user_and_its_message_are_written_in_one_transaction(client):
    user = await register(client, full_name="Grace Hopper", phone="+351912345678")
    rows = await db_rows(
        "SELECT routing_key, message_type, payload::text, headers::text, attempts, "
        "jsonb_typeof(payload), jsonb_typeof(headers) FROM outbox"
    )
    assert len(rows) == 1
    routing_key, message_type, payload, headers, attempts, *kinds = rows[0]
    assert (routing_key, message_type, attempts) == ("user_registered", "user_registered", 0)
    assert kinds == ["object", "object"]  # JSON documents, as the kit's relay reads them
    message = UserRegistered.model_validate_json(payload)
    assert message.user_id == uuid.UUID(user["id"])
    assert (message.email, message.full_name, message.role, message.phone) == (
        user["email"],
        "Grace Hopper",
        "customer",
        "+351912345678",
    )
    assert message.producer == "auth"
    assert "traceparent" in json.loads(headers)  # the request's trace, for the relay to continue


async def test_outbox_table_has_exactly_the_kit_columns(client):
    import sqlalchemy as sa

    from kit.tables import add_kit_tables

    cols = await db_rows(
        "SELECT column_name, data_type, character_maximum_length, is_nullable, column_default "
        "FROM information_schema.columns WHERE table_name = 'outbox' ORDER BY column_name"
    )
    kit = add_kit_tables(sa.MetaData())["outbox"]
    assert [c[0] for c in cols] == sorted(c.name for c in kit.columns)
    by_name = {c[0]: c for c in cols}
    assert by_name["id"][1] == "uuid"
    assert (
        by_name["created_at"][1] == "timestamp with time zone"
        and "now()" in by_name["created_at"][4]
    )
    assert by_name["routing_key"][1:3] == ("character varying", 100)
    assert by_name["payload"][1] == by_name["headers"][1] == "jsonb"
    assert by_name["attempts"][1] == "integer" and by_name["attempts"][4] == "0"
    assert all(c[3] == "NO" for c in cols)
    assert await db_rows(
        "SELECT indexdef LIKE '%%(created_at)%%' FROM pg_indexes "
        "WHERE indexname = 'ix_outbox_created_at'"
    ) == [(True,)]


@pytest.fixture
async def failing_outbox():
    """Make every outbox insert fail inside PostgreSQL (after the user row was inserted)."""
    await db_rows(
        "CREATE FUNCTION test_fail_outbox() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'outbox unavailable (test)'; END $$"
    )
    await db_rows(
        "CREATE TRIGGER test_fail_outbox BEFORE INSERT ON outbox "
        "FOR EACH ROW EXECUTE FUNCTION test_fail_outbox()"
    )
    try:
        yield
    finally:
        await db_rows("DROP TRIGGER IF EXISTS test_fail_outbox ON outbox")
        await db_rows("DROP FUNCTION IF EXISTS test_fail_outbox()")


async def test_failed_outbox_write_rolls_the_user_back(client, failing_outbox):
    email = new_email()
    resp = await client.post("/auth/register", json={"email": email, "password": STRONG_PASSWORD})
    assert_problem(resp, 500)
    assert await db_rows("SELECT count(*) FROM users WHERE email = %s", email) == [(0,)]
    assert await db_rows("SELECT count(*) FROM outbox") == [(0,)]


async def test_without_the_failure_both_rows_commit(client):
    email = new_email()
    resp = await client.post("/auth/register", json={"email": email, "password": STRONG_PASSWORD})
    assert resp.status_code == 201
    assert await db_rows("SELECT count(*) FROM users WHERE email = %s", email) == [(1,)]
    assert await db_rows("SELECT count(*) FROM outbox WHERE payload->>'email' = %s", email) == [
        (1,)
    ]


async def next_message(queue, timeout: float = 10.0):
    async with queue.iterator(timeout=timeout) as it:
        async for message in it:
            await message.ack()
            return message
    raise AssertionError("no message")


@pytest.fixture
async def purge_consumer_queues(amqp):
    """Leave the run's vhost as found: take our user_registered back out of the platform's
    consumer queues (e.g. notifications'), so other services' tests do not receive it."""
    yield
    from contracts.topology import CONSUMERS

    for service, messages in CONSUMERS.items():
        if UserRegistered in messages:
            queue = await amqp.declare_queue(
                f"{service}.{UserRegistered.routing_key}", passive=True
            )
            await queue.purge()


async def test_relay_publishes_user_registered_and_the_trace_continues(
    auth_app, amqp, purge_consumer_queues
):
    from asgi_lifespan import LifespanManager

    from auth.core.lifespan import AuthApplication
    from tests.auth.conftest import auth_client

    queue = await bound_queue(amqp, "user_registered")
    app = AuthApplication(auth_app.django_app, outbox_relay=True)
    trace_id = uuid.uuid4().hex
    traceparent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    async with LifespanManager(app), auth_client(app) as client:
        resp = await client.post(
            "/auth/register",
            json={"email": new_email(), "password": STRONG_PASSWORD, "role": "organizer"},
            headers={"traceparent": traceparent},
        )
        assert resp.status_code == 201, resp.text
        user = resp.json()
        raw = await next_message(queue)

    message = UserRegistered.model_validate_json(raw.body)
    assert message.user_id == uuid.UUID(user["id"]) and message.role == "organizer"
    assert message.email == user["email"] and message.producer == "auth"
    assert raw.message_id == str(message.message_id) and raw.type == "user_registered"
    assert raw.delivery_mode == 2  # persistent
    assert trace_id in raw.headers["traceparent"]  # the HTTP request's trace, continued
    assert await db_rows("SELECT count(*) FROM outbox") == [(0,)]  # relayed rows are removed
