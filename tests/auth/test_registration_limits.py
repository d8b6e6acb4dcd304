"""Registrations are limited per client address per hour and for all addresses together per
minute, with counters in PostgreSQL (shared by replicas); over a limit is 429 problem details
with Retry-After; 0 turns a limit off."""

from __future__ import annotations

import pytest

from tests.auth.helpers import STRONG_PASSWORD, assert_problem, db_rows, new_email

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


async def register_from(client, address: str):
    return await client.post(
        "/auth/register",
        json={"email": new_email(), "password": STRONG_PASSWORD},
        headers={"X-Forwarded-For": address},  # as the gateway (trusted, 127.0.0.1) forwards it
    )


def assert_registration_throttled(resp, max_wait: int) -> None:
    problem = assert_problem(resp, 429)
    assert problem["type"].endswith("/registration-throttled")
    assert 0 < int(resp.headers["retry-after"]) <= max_wait


async def test_an_address_may_register_20_accounts_an_hour(client, settings):
    assert settings.REGISTRATIONS_PER_ADDRESS_PER_HOUR == 20  # the default
    settings.REGISTRATIONS_PER_MINUTE = 0
    for _ in range(20):
        assert (await register_from(client, "203.0.113.40")).status_code == 201
    assert_registration_throttled(await register_from(client, "203.0.113.40"), 3600)
    assert (await register_from(client, "203.0.113.41")).status_code == 201  # another address
    assert await db_rows("SELECT count(*) FROM users") == [(21,)]


async def test_all_addresses_together_are_limited_per_minute(client, settings):
    settings.REGISTRATIONS_PER_MINUTE = 3
    for i in range(3):
        assert (await register_from(client, f"203.0.113.{50 + i}")).status_code == 201
    assert_registration_throttled(await register_from(client, "203.0.113.60"), 60)


async def test_zero_turns_each_limit_off(client, settings):
    settings.REGISTRATIONS_PER_ADDRESS_PER_HOUR = 0
    settings.REGISTRATIONS_PER_MINUTE = 0
    for _ in range(25):
        assert (await register_from(client, "203.0.113.70")).status_code == 201
