"""Failed logins are limited per (account, client address), per client address, and under a much
larger ceiling per account (state in PostgreSQL); an attacker spending an account's budget from
one address does not lock its owner out elsewhere; a spoofed X-Forwarded-For buys no budget."""

from __future__ import annotations

import pytest

from auth.core.client_address import resolve
from tests.auth.conftest import auth_client
from tests.auth.helpers import assert_problem, login, new_email, register

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WRONG = "definitely-not-it-1"


def via_gateway(client_ip: str, spoofed: str | None = None) -> dict[str, str]:
    """Headers as the gateway (a trusted proxy at 127.0.0.1) forwards them: it appends the
    address it saw to whatever X-Forwarded-For the client sent."""
    return {"X-Forwarded-For": f"{spoofed}, {client_ip}" if spoofed else client_ip}


def assert_throttled(resp) -> int:
    problem = assert_problem(resp, 429)
    retry_after = int(resp.headers["retry-after"])
    assert 0 < retry_after <= 15 * 60
    assert problem["type"].endswith("/login-throttled")
    return retry_after


async def test_failures_from_one_address_do_not_lock_the_owner_out_elsewhere(client):
    user = await register(client)
    for _ in range(5):
        resp = await login(client, user["email"], WRONG, headers=via_gateway("198.51.100.7"))
        assert_problem(resp, 401)
    # The attacker's address has spent this account's budget: 429, even with the right password.
    assert_throttled(await login(client, user["email"], headers=via_gateway("198.51.100.7")))
    # The owner, from another address, still logs in.
    assert (
        await login(client, user["email"], headers=via_gateway("198.51.100.8"))
    ).status_code == 200
    # And the attacker is still throttled.
    assert_throttled(await login(client, user["email"], WRONG, headers=via_gateway("198.51.100.7")))


async def test_the_account_has_a_much_larger_ceiling_across_addresses(client, settings):
    settings.LOGIN_MAX_FAILURES_PER_ACCOUNT = 8  # default 100; small to keep the test short
    user = await register(client)
    for i in range(8):  # 2 per address: no (account, address) pair reaches its limit of 5
        resp = await login(
            client, user["email"], WRONG, headers=via_gateway(f"198.51.100.{i // 2}")
        )
        assert_problem(resp, 401)
    assert_throttled(await login(client, user["email"], headers=via_gateway("198.51.100.99")))
    # Other accounts from the same addresses are not affected.
    other = await register(client)
    assert (
        await login(client, other["email"], headers=via_gateway("198.51.100.1"))
    ).status_code == 200


async def test_success_resets_the_account_budget(client):
    user = await register(client)
    for _ in range(4):
        assert_problem(await login(client, user["email"], WRONG), 401)
    assert (await login(client, user["email"])).status_code == 200
    for _ in range(4):
        assert_problem(await login(client, user["email"], WRONG), 401)
    assert (await login(client, user["email"])).status_code == 200


async def test_address_is_limited_after_20_failures_across_accounts(client):
    victim = await register(client)
    for _ in range(20):
        resp = await login(client, new_email(), WRONG, headers=via_gateway("203.0.113.10"))
        assert_problem(resp, 401)
    assert_throttled(await login(client, victim["email"], headers=via_gateway("203.0.113.10")))
    # The same account from another address still logs in.
    assert (
        await login(client, victim["email"], headers=via_gateway("203.0.113.11"))
    ).status_code == 200


async def test_spoofed_forwarded_for_does_not_escape_the_address_limit(client, settings):
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 3  # configurable; small to keep the test short
    victim = await register(client)
    for i in range(3):
        resp = await login(
            client, new_email(), WRONG, headers=via_gateway("203.0.113.20", spoofed=f"10.0.0.{i}")
        )
        assert_problem(resp, 401)
    for i in range(3, 6):  # a new made-up left-most address each time: still the same client
        resp = await login(
            client, victim["email"], headers=via_gateway("203.0.113.20", spoofed=f"10.0.0.{i}")
        )
        assert_throttled(resp)


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(auth_app, settings):
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 3
    async with auth_client(auth_app, client=("192.0.2.50", 5555)) as direct:
        victim = await register(direct)
        for i in range(3):
            resp = await login(
                direct, new_email(), WRONG, headers={"X-Forwarded-For": f"10.1.0.{i}"}
            )
            assert_problem(resp, 401)
        assert_throttled(
            await login(direct, victim["email"], headers={"X-Forwarded-For": "10.1.0.200"})
        )


@pytest.mark.parametrize(
    ("remote", "xff", "expected"),
    [
        ("192.0.2.1", None, "192.0.2.1"),
        ("192.0.2.1", "10.0.0.1", "192.0.2.1"),  # untrusted peer: its header is not believed
        ("127.0.0.1", None, "127.0.0.1"),
        ("127.0.0.1", "203.0.113.5", "203.0.113.5"),
        ("127.0.0.1", "6.6.6.6, 203.0.113.5", "203.0.113.5"),  # spoofed left-most ignored
        ("127.0.0.1", "203.0.113.5, 127.0.0.1", "203.0.113.5"),  # a chain of trusted proxies
        ("::1", "2001:db8::7", "2001:db8::7"),
        ("127.0.0.1", "6.6.6.6, not-an-ip", "127.0.0.1"),
        ("127.0.0.1", "203.0.113.5:4711", "203.0.113.5"),
    ],
)
def test_client_address_is_the_right_most_untrusted_hop(remote, xff, expected):
    assert resolve(remote, xff, ["127.0.0.1", "::1"]) == expected
