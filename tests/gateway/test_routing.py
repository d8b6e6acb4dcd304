"""Every prefix reaches its own service, with the request and the answer passed through
faithfully and the headers a proxy must not pass dropped."""

from __future__ import annotations

import pytest

from tests.gateway.conftest import SERVICES, Stack, gateway_stack
from tests.support.tokens import bearer, mint

PATHS = {
    "auth": "/auth/me",
    "events": "/events/3f1c/update",
    "booking": "/booking/create",
    "payments": "/payments/process",
    "notifications": "/notifications/send",
    "analytics": "/analytics/report",
}


@pytest.mark.parametrize("service", SERVICES)
async def test_each_prefix_reaches_its_own_service_intact(stack: Stack, service: str) -> None:
    path = PATHS[service]
    resp = await stack.client.post(
        path + "?b=2&a=%20x&a=y",
        content=b'{"quantity": 2}',
        headers={
            **bearer(mint()),
            "content-type": "application/json",
            "x-echo-status": "201",
            "x-custom": "kept",
            "idempotency-key": "k-1",
        },
    )
    assert resp.status_code == 201, resp.text
    assert resp.headers["x-upstream"] == service
    assert stack.seen() == {name: int(name == service) for name in SERVICES}
    seen = stack.upstreams[service].requests[0]
    assert (seen.method, seen.path, seen.query) == ("POST", path, b"b=2&a=%20x&a=y")
    assert seen.body == b'{"quantity": 2}'
    assert seen.header("content-type") == "application/json"
    assert seen.header("content-length") == "15"
    assert seen.header("x-custom") == "kept" and seen.header("idempotency-key") == "k-1"
    assert seen.header(
        "authorization",
    ).startswith("Bearer ")
    # The answer: status, body and end-to-end headers as the service sent them.
    assert resp.json()["path"] == path
    assert resp.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert "keep-alive" not in resp.headers
    assert "x-hop-secret" not in resp.headers  # named in the service's Connection header
    assert len(resp.headers.get_list("x-trace-id")) == 1
    assert resp.headers["x-trace-id"] != "upstream-should-not-duplicate"


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_methods_pass_through(stack: Stack, method: str) -> None:
    resp = await stack.client.request(method, "/booking/b-1", headers=bearer(mint()))
    assert resp.status_code == 200
    assert stack.upstreams["booking"].requests[0].method == method


@pytest.mark.parametrize("status", [202, 204, 400, 404, 409, 500, 503])
async def test_service_status_codes_pass_through(stack: Stack, status: int) -> None:
    resp = await stack.client.get(
        "/booking", headers={**bearer(mint()), "x-echo-status": str(status)}
    )
    assert resp.status_code == status
    assert resp.headers["x-upstream"] == "booking"


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/events", "events"),
        ("/booking", "booking"),
        ("/payments", "payments"),
        ("/notifications", "notifications"),
    ],
)
async def test_bare_prefixes_are_routes(stack: Stack, path: str, service: str) -> None:
    resp = await stack.client.get(path, headers=bearer(mint()))
    assert resp.status_code == 200
    assert resp.json()["service"] == service


@pytest.mark.parametrize(
    "path", ["/auth", "/analytics", "/eventsx", "/paymentsx", "/nope", "/internal/outbox", "/"]
)
async def test_unknown_route_is_a_404_problem(stack: Stack, path: str) -> None:
    resp = await stack.client.get(path, headers=bearer(mint()))
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["status"] == 404
    assert sum(stack.seen().values()) == 0


async def test_raw_path_is_forwarded_unchanged(stack: Stack) -> None:
    resp = await stack.client.get("/booking/a%20b%2Fc/%E2%82%AC?q=%2F%26&x", headers=bearer(mint()))
    assert resp.status_code == 200
    seen = stack.upstreams["booking"].requests[0]
    assert seen.raw_path == b"/booking/a%20b%2Fc/%E2%82%AC"
    assert seen.query == b"q=%2F%26&x"


async def test_dot_segments_are_refused(stack: Stack) -> None:
    # httpx would normalise the path: write the request line as an attacker would.
    from tests.gateway.test_limits import raw_request

    status, _, body = await raw_request(
        stack.gateway, b"GET /events/../booking/secret HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert status == 400, body
    assert sum(stack.seen().values()) == 0


async def test_hop_by_hop_and_spoofed_identity_headers_never_reach_a_service(stack: Stack) -> None:
    token = mint()
    seen = await stack.seen_by_booking(
        {
            **bearer(token),
            "connection": "keep-alive, x-private-hop",
            "x-private-hop": "1",
            "keep-alive": "timeout=5",
            "te": "trailers",
            "trailer": "x-foo",
            "proxy-authorization": "Basic Zm9vOmJhcg==",
            "x-user-id": "00000000-0000-0000-0000-000000000001",
            "x-user-role": "admin",
            "x-authenticated-userid": "admin",
            "x-auth-request-user": "admin",
            "x-remote-user": "admin",
            "x-forwarded-user": "admin",
            "x-forwarded-for": "203.0.113.9",
            "x-forwarded-proto": "https",
            "x-forwarded-host": "evil.example",
            "x-real-ip": "203.0.113.10",
            "forwarded": "for=203.0.113.11",
            "x-end-to-end": "kept",
        }
    )
    names = {name for name, _ in seen.headers}
    for dropped in (
        "x-private-hop",
        "keep-alive",
        "te",
        "trailer",
        "proxy-authorization",
        "x-user-id",
        "x-user-role",
        "x-authenticated-userid",
        "x-auth-request-user",
        "x-remote-user",
        "x-forwarded-user",
        "x-real-ip",
        "forwarded",
    ):
        assert dropped not in names, dropped
    assert seen.header("connection") in (None, "keep-alive")  # the gateway's own hop
    # X-Forwarded-For is the peer the gateway saw, nothing a client wrote.
    assert seen.all("x-forwarded-for") == ["127.0.0.1"]
    assert seen.all("x-forwarded-proto") == ["http"]
    assert seen.all("x-forwarded-host") == [stack.gateway.removeprefix("http://")]
    assert seen.header("authorization") == f"Bearer {token}"
    assert seen.header("x-end-to-end") == "kept"


async def test_streamed_and_large_answers_pass_whole(stack: Stack) -> None:
    headers = bearer(mint())
    streamed = await stack.client.get("/booking/stream", headers=headers)
    assert streamed.status_code == 200 and streamed.text == "chunk0;chunk1;chunk2;"
    big = await stack.client.get("/booking/big", headers=headers)
    assert big.status_code == 200 and big.content == b"x" * 200 * 1024
    assert big.headers["content-length"] == str(200 * 1024)


async def test_chunked_request_body_under_the_limit_is_forwarded(stack: Stack) -> None:
    async def chunks():
        for i in range(10):
            yield f"part{i};".encode()

    resp = await stack.client.post("/booking/create", content=chunks(), headers=bearer(mint()))
    assert resp.status_code == 200
    seen = stack.upstreams["booking"].requests[0]
    assert seen.body == b"".join(f"part{i};".encode() for i in range(10))
    assert seen.header("transfer-encoding") is None


async def test_head_passes_without_a_body(stack: Stack) -> None:
    resp = await stack.client.head("/events")
    assert resp.status_code == 200 and resp.content == b""
    assert stack.upstreams["events"].requests[0].method == "HEAD"


async def test_a_client_x_forwarded_for_is_replaced_by_the_peer(stack: Stack) -> None:
    # Services read the right-most X-Forwarded-For entry, but anything further left would still
    # be logged and trusted by whoever reads it naively: the client's value never passes.
    seen = await stack.seen_by_booking({**bearer(mint()), "x-forwarded-for": "1.2.3.4"})
    assert seen.all("x-forwarded-for") == ["127.0.0.1"]
    assert "1.2.3.4" not in str(seen.headers)


async def test_behind_a_trusted_balancer_only_the_client_it_reports_passes(echoes) -> None:
    # The balancer (the test client, trusted) reports the chain "spoofed, real client": the
    # server takes the right-most untrusted entry as the peer, and the service sees only that.
    async with gateway_stack(echoes, behind_balancer=True) as s:
        chain = "1.2.3.4, 198.51.100.7"
        seen = await s.seen_by_booking({**bearer(mint()), "x-forwarded-for": chain})
        assert seen.all("x-forwarded-for") == ["198.51.100.7"]


@pytest.mark.parametrize("method", ["PROPFIND", "TRACE", "MKCOL", "LINK", "SEARCH"])
async def test_unsupported_methods_are_405_and_never_forwarded(stack: Stack, method: str) -> None:
    resp = await stack.client.request(method, "/booking/b-1", headers=bearer(mint()))
    assert resp.status_code == 405, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["status"] == 405
    assert set(resp.headers["allow"].replace(" ", "").split(",")) == {
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "PATCH",
        "DELETE",
        "OPTIONS",
    }
    # Without a token too: the method is refused before anything else is looked at.
    assert (await stack.client.request(method, "/booking/b-1")).status_code == 405
    assert sum(stack.seen().values()) == 0


async def test_a_method_the_http_parser_does_not_know_is_refused_before_the_gateway(
    stack: Stack,
) -> None:
    # uvicorn's parser (llhttp) knows a fixed list of methods and answers 400 to any other
    # before an application sees it: refused all the same, and nothing is forwarded.
    resp = await stack.client.request("BREW", "/booking/b-1", headers=bearer(mint()))
    assert resp.status_code in (400, 405)
    assert sum(stack.seen().values()) == 0


def test_trusting_every_balancer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # uvicorn given FORWARDED_ALLOW_IPS="*" takes the LEFT-most X-Forwarded-For entry as the
    # client: the one the client writes itself. Every address-based limit would be the client's
    # choice, so the gateway refuses to start with it.
    from pydantic import ValidationError

    from gateway.config import GatewaySettings

    for value in ("*", " * ", "10.0.0.0/8,*"):
        monkeypatch.setenv("FORWARDED_ALLOW_IPS", value)
        with pytest.raises(ValidationError, match="FORWARDED_ALLOW_IPS"):
            GatewaySettings()
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/8, fc00::/7")
    assert GatewaySettings().forwarded_allow_ips == "10.0.0.0/8, fc00::/7"
