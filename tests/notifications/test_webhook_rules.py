"""The webhook rules without I/O: which addresses are public, the retry schedule, stable ids,
and what a target URL may be."""

from __future__ import annotations

import ipaddress
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from apps.notifications.adapters.webhooks import WebhookTargets, parse_target
from apps.notifications.domain import (
    WEBHOOK_RETRY_WINDOW,
    UrlNotAllowed,
    WebhookBackoff,
    address_allowed,
    delivery_id,
    webhook_secret,
)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "169.254.1.1",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.251",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",
        "ff02::1",
        "::ffff:10.0.0.1",
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
    ],
)
def test_non_public_addresses_are_refused(address):
    assert not address_allowed(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address):
    assert address_allowed(ipaddress.ip_address(address))


def test_the_first_retry_is_within_ten_seconds_and_the_last_at_the_day_s_end():
    backoff, now = WebhookBackoff(), datetime.now(UTC)
    give_up = now + WEBHOOK_RETRY_WINDOW
    for jitter in (-1.0, 0.0, 1.0):
        first = backoff.next_attempt(1, now=now, give_up_at=give_up, jitter=jitter)
        assert first is not None and timedelta(seconds=3) <= first - now <= timedelta(seconds=10)
    at, attempts, pauses = now, 0, []
    while True:
        attempts += 1
        nxt = backoff.next_attempt(attempts, now=at, give_up_at=give_up, jitter=0.0)
        if nxt is None:
            break
        pauses.append(nxt - at)
        at = nxt
    assert at == give_up  # retried until the window's end, then given up
    assert pauses == sorted(pauses[:-1]) + pauses[-1:]  # growing (the last one is cut short)
    assert max(pauses) <= timedelta(hours=6)
    assert 8 <= attempts <= 15


def test_ids_and_secrets():
    message, endpoint = uuid.uuid4(), uuid.uuid4()
    assert delivery_id(message, endpoint) == delivery_id(message, endpoint)
    assert delivery_id(message, endpoint) != delivery_id(message, uuid.uuid4())
    secret = webhook_secret()
    assert secret.startswith("whsec_") and secret != webhook_secret()


@pytest.mark.parametrize(
    "url",
    ["ftp://x.example/", "http:///path", "http://u:p@x.example/", "http://x.example:99999/", "x"],
)
def test_only_plain_http_urls_are_targets(url):
    with pytest.raises(UrlNotAllowed):
        parse_target(url)


def test_a_target_keeps_its_path_query_and_default_port():
    t = parse_target("https://Hooks.Example.com/in?x=1")
    assert (t.host, t.port, t.path, t.host_header) == (
        "hooks.example.com",
        443,
        "/in?x=1",
        "hooks.example.com",
    )


async def test_a_name_that_resolves_to_any_private_address_is_refused():
    async def resolve(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "192.168.0.10"]

    targets = WebhookTargets("", resolve)
    with pytest.raises(UrlNotAllowed):
        await targets.check("https://hooks.example.com/")
    listed = WebhookTargets("hooks.example.com", resolve)
    assert (await listed.check("https://hooks.example.com/")).host == "hooks.example.com"


def test_a_webhook_body_never_carries_ticket_secrets():
    from apps.notifications.webhooks import webhook_body
    from contracts.messages import IssuedTicket
    from tests.notifications.helpers import booking_confirmed

    ticket = IssuedTicket(
        ticket_id=uuid.uuid4(), ticket_type_id=uuid.uuid4(), attendee_name="Ada", secret="s3cr3t"
    )
    body = webhook_body(booking_confirmed(tickets=[ticket]))
    assert "s3cr3t" not in body
    assert str(ticket.ticket_id) in body and "Ada" in body
