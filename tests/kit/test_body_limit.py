"""Every service caps request bodies itself (MAX_BODY_BYTES, the gateway's default of 1 MiB), not
only the gateway: a caller inside the network cannot make a service buffer gigabytes. A body over
the cap is a 413 problem, declared (Content-Length) or streamed (chunked), and the service stops
reading it at the cap."""

from __future__ import annotations

import uuid

import aiohttp
import pytest

from apps.booking.bootstrap import build as build_booking
from apps.events.bootstrap import build as build_events
from gateway.config import GatewaySettings
from kit.settings import ServiceSettings
from tests.conftest import http_client
from tests.support.serving import serve
from tests.support.tokens import bearer, mint

CAP = 1024


def test_the_services_default_cap_is_the_gateways():
    assert ServiceSettings().max_body_bytes == GatewaySettings().max_body_bytes == 1024 * 1024


@pytest.mark.parametrize("path", ["/events/create", "/booking/create"])
async def test_a_declared_body_over_the_cap_is_413_before_any_route_runs(path):
    build = build_events if path.startswith("/events") else build_booking
    service = build(max_body_bytes=CAP)  # not started: the refusal needs no database
    async with http_client(service) as client:
        resp = await client.post(
            path,
            content=b'{"title": "' + b"x" * (CAP + 1) + b'"}',
            headers={**bearer(mint(uuid.uuid4(), "organizer")), "Content-Type": "application/json"},
        )
    assert resp.status_code == 413, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["type"].endswith("/body-too-large") and body["status"] == 413


async def test_a_streamed_body_is_read_no_further_than_the_cap():
    """Straight at the ASGI app: the body arrives in 100-byte pieces, without Content-Length,
    and the service stops asking for more once it has seen more than the cap."""
    service = build_events(max_body_bytes=CAP)
    pieces_read = 0

    async def receive():
        nonlocal pieces_read
        pieces_read += 1
        return {"type": "http.request", "body": b"x" * 100, "more_body": pieces_read < 1000}

    sent = []

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/events/create",
        "raw_path": b"/events/create",
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 1),
        "server": ("t", 80),
        "headers": [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")],
    }
    await service.api(scope, receive, send)
    assert sent[0]["status"] == 413
    assert pieces_read == CAP // 100 + 1  # the piece that crossed the cap, and no more


async def test_a_chunked_body_over_the_cap_is_413_over_real_http():
    service = build_events(max_body_bytes=CAP)

    async def chunks():
        for _ in range(8):
            yield b"y" * 512

    async with serve(service.api, lifespan="off") as url, aiohttp.ClientSession() as session:
        async with session.post(
            f"{url}/events/create",
            data=chunks(),
            headers={**bearer(mint(uuid.uuid4(), "organizer")), "Content-Type": "application/json"},
        ) as resp:
            assert resp.request_info.headers.get("Transfer-Encoding") == "chunked"
            assert resp.status == 413
            assert (await resp.json(content_type=None))["type"].endswith("/body-too-large")
        # a body within the cap still reaches the route (422: not a valid event)
        async with session.post(
            f"{url}/events/create",
            json={"title": "small"},
            headers=bearer(mint(uuid.uuid4(), "organizer")),
        ) as ok:
            assert ok.status == 422
