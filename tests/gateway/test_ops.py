"""Health, readiness, CORS, and the docs the gateway assembles: the merged OpenAPI document (with
the real events service behind it), the Swagger page and the AsyncAPI index."""

from __future__ import annotations

import pytest

from apps.events.bootstrap import build as build_events
from tests.gateway.conftest import SERVICES, Stack, gateway_stack, serve
from tests.support.api_bodies import event_body
from tests.support.tokens import bearer, mint


@pytest.fixture(scope="module")
async def events_url(start_service):
    """The real events service (real database and broker) served over HTTP."""
    async with start_service(build_events) as svc, serve(svc.api, lifespan="off") as url:
        yield url


async def test_health(stack: Stack) -> None:
    resp = await stack.client.get("/health")
    assert resp.status_code == 200 and resp.json()["status"] == "ok"


async def test_ready_when_every_service_is_ready(stack: Stack) -> None:
    resp = await stack.client.get("/ready")
    assert resp.status_code == 200
    assert {n: v["status"] for n, v in resp.json()["services"].items()} == dict.fromkeys(
        SERVICES, "ready"
    )


async def test_ready_is_503_with_detail_when_a_service_is_not(echoes) -> None:
    async with gateway_stack(echoes, dead=("payments",)) as s:
        s.upstreams["booking"].ready_status = 503
        resp = await s.client.get("/ready")
        assert resp.status_code == 503
        assert resp.headers["content-type"] == "application/problem+json"
        services = resp.json()["services"]
        assert services["booking"]["status"] == "not ready"
        assert services["payments"]["status"] == "unreachable"
        assert services["events"]["status"] == "ready"
        assert "booking" in resp.json()["detail"] and "payments" in resp.json()["detail"]


async def test_public_ready_reveals_no_upstream_detail(echoes) -> None:
    # A service's own /ready names what is wrong (its database, its broker...), and a failed
    # connection has an error text: operators read those in the gateway's log and at the
    # service itself, not the public.
    async with gateway_stack(echoes, dead=("payments",)) as s:
        s.upstreams["booking"].ready_status = 503
        s.upstreams["booking"].ready_body = {
            "status": "not ready",
            "checks": {"database": "connection to 10.0.3.7:5432 refused"},
        }
        resp = await s.client.get("/ready")
        assert resp.status_code == 503
        assert "10.0.3.7" not in resp.text and "refused" not in resp.text
        assert "ClientConnectorError" not in resp.text
        services = resp.json()["services"]
        assert services["booking"] == {"status": "not ready"}
        assert services["payments"] == {"status": "unreachable"}
        assert services["events"] == {"status": "ready"}
        s.upstreams["booking"].ready_status = 200
        s.upstreams["booking"].ready_body = {"status": "ready", "checks": {"db": "pg 10.0.3.7"}}
        resp = await s.client.get("/ready")
        assert resp.status_code == 503  # payments is still down
        assert "10.0.3.7" not in resp.text


def _doc(schema_name: str, schema: dict, paths: dict) -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "x", "version": "1"},
        "paths": paths,
        "components": {"schemas": {schema_name: schema}},
    }


def _get(ref: str) -> dict:
    return {
        "get": {"responses": {"200": {"content": {"application/json": {"schema": {"$ref": ref}}}}}}
    }


async def test_merged_openapi_has_the_services_public_routes(echoes, events_url) -> None:
    async with gateway_stack(echoes, urls={"events": events_url}, dead=("analytics",)) as s:
        s.upstreams["booking"].openapi = _doc(
            "Item",
            {"type": "object", "properties": {"seats": {"type": "integer"}}},
            {
                "/booking/{id}": _get("#/components/schemas/Item"),
                "/internal/holds": _get("#/components/schemas/Item"),
                "/booking/internal/sweep": _get("#/components/schemas/Item"),
                "/health": {"get": {"responses": {"200": {"description": "ok"}}}},
            },
        )
        s.upstreams["payments"].openapi = _doc(
            "Item",
            {"type": "object", "properties": {"amount": {"type": "string"}}},
            {"/payments/{id}": _get("#/components/schemas/Item")},
        )
        resp = await s.client.get("/openapi.json")
        assert resp.status_code == 200
        doc = resp.json()
        paths = doc["paths"]
        # The real events service's routes.
        assert {
            "/events",
            "/events/create",
            "/events/{event_id}",
            "/events/{event_id}/update",
        } <= set(paths)
        assert "post" in paths["/events/create"]
        assert "EventPublic" in doc["components"]["schemas"]
        # Internal and operational routes are not part of the public API.
        assert not [p for p in paths if "internal" in p or p in ("/health", "/ready")]
        assert not [p for p in paths if p.startswith("/asyncapi")]
        # Same component name, different content: both kept, references rewritten.
        schemas = doc["components"]["schemas"]
        booking_ref = paths["/booking/{id}"]["get"]["responses"]["200"]["content"][
            "application/json"
        ]["schema"]["$ref"]
        payments_ref = paths["/payments/{id}"]["get"]["responses"]["200"]["content"][
            "application/json"
        ]["schema"]["$ref"]
        assert booking_ref != payments_ref
        assert "seats" in schemas[booking_ref.rsplit("/", 1)[1]]["properties"]
        assert "amount" in schemas[payments_ref.rsplit("/", 1)[1]]["properties"]
        # Services without a document are named, not silently missing.
        assert "analytics" in doc["info"]["description"]
        assert "analytics" in doc["x-services"]["missing"]
        assert "events" in doc["x-services"]["included"]


async def test_events_service_through_the_gateway(echoes, events_url) -> None:
    async with gateway_stack(echoes, urls={"events": events_url}) as s:
        organizer = mint(role="organizer")
        created = await s.client.post(
            "/events/create",
            headers=bearer(organizer),
            json=event_body(title="Gateway night", price="12.50"),
        )
        assert created.status_code == 201, created.text
        event_id = created.json()["id"]
        fetched = await s.client.get(f"/events/{event_id}")  # public, no token
        assert fetched.status_code == 200 and fetched.json()["price"] == "12.50"
        listed = await s.client.get("/events", params={"limit": 100})
        assert event_id in {e["id"] for e in listed.json()["items"]}
        # The service's own problem details pass through unchanged.
        invalid = await s.client.post("/events/create", headers=bearer(organizer), json={})
        assert invalid.status_code == 422
        assert invalid.headers["content-type"] == "application/problem+json"
        # A customer token is verified by the gateway and refused by the service itself.
        forbidden = await s.client.post(
            "/events/create", headers=bearer(mint(role="customer")), json={}
        )
        assert forbidden.status_code in (403, 422)


async def test_docs_page_works_offline(stack: Stack) -> None:
    page = await stack.client.get("/docs")
    assert page.status_code == 200
    assert "/_assets/swagger-ui-dist/swagger-ui-bundle.js" in page.text
    assert "/openapi.json" in page.text
    assert "cdn.jsdelivr.net" not in page.text and "unpkg.com" not in page.text
    asset = await stack.client.get("/_assets/swagger-ui-dist/swagger-ui-bundle.js")
    if asset.status_code == 404:
        pytest.skip("front-end assets not installed (make install)")
    assert asset.status_code == 200


async def test_asyncapi_index_links_and_proxies_each_service(echoes) -> None:
    async with gateway_stack(echoes, dead=("analytics",)) as s:
        index = await s.client.get("/asyncapi")
        assert index.status_code == 200
        for name in SERVICES:
            assert f'href="/asyncapi/{name}"' in index.text
            assert f'href="/asyncapi/{name}.json"' in index.text
        doc = await s.client.get("/asyncapi/events.json")
        assert doc.status_code == 200 and doc.json()["info"]["title"] == "events"
        page = await s.client.get("/asyncapi/booking")
        assert page.status_code == 200 and "booking asyncapi" in page.text
        assert (await s.client.get("/asyncapi/nope.json")).status_code == 404
        down = await s.client.get("/asyncapi/analytics.json")
        assert down.status_code == 503
        assert down.headers["content-type"] == "application/problem+json"


async def test_cors_from_settings(echoes) -> None:
    async with gateway_stack(echoes, cors_origins="https://app.example") as s:
        preflight = await s.client.options(
            "/booking/create",
            headers={
                "origin": "https://app.example",
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization,content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        assert sum(s.seen().values()) == 0  # answered by the gateway
        other = await s.client.get("/events", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        allowed = await s.client.get("/events", headers={"origin": "https://app.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        assert "x-trace-id" in allowed.headers["access-control-expose-headers"].lower()
