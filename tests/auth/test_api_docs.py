"""Auth's API documentation, served like the FastAPI services': ``/openapi.json`` (a valid
OpenAPI 3.1 document of exactly the public routes, matching what the routes really answer),
``/docs`` and ``/asyncapi`` pages on self-hosted assets, and ``/_assets`` itself."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from kit import assets
from tests.auth.helpers import bearer, new_email, tokens_for

pytestmark = pytest.mark.django_db(transaction=True)

PUBLIC_OPERATIONS = {
    ("/auth/register", "post"),
    ("/auth/login", "post"),
    ("/auth/refresh", "post"),
    ("/auth/logout", "post"),
    ("/auth/me", "get"),
    ("/auth/jwks.json", "get"),
}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
CDN_HOSTS = ("cdn.", "unpkg.com", "jsdelivr", "cdnjs", "googleapis")


async def _document(client: Any) -> dict[str, Any]:
    resp = await client.get("/openapi.json")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    return resp.json()


def _conforms(doc: dict[str, Any], component: str, instance: Any) -> list[str]:
    """Errors of ``instance`` against ``#/components/schemas/<component>`` of ``doc``."""
    registry = Registry().with_resource("urn:auth-openapi", Resource(doc, DRAFT202012))
    validator = Draft202012Validator(
        {"$ref": f"urn:auth-openapi#/components/schemas/{component}"}, registry=registry
    )
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [v for k, v in node.items() if k == "$ref"]
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


async def test_openapi_document_is_valid_and_lists_exactly_the_public_routes(client) -> None:
    doc = await _document(client)

    assert doc["openapi"].startswith("3.1")
    errors = [str(e) for e in OPENAPI_31_VALIDATOR.iter_errors(doc)]  # the official meta-schema
    assert errors == []
    for name, schema in doc["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)  # each schema object is valid JSON Schema
    for ref in _refs(doc):  # and every reference resolves
        section, name = ref.removeprefix("#/components/").split("/")
        assert name in doc["components"][section], ref

    operations = {
        (path, method)
        for path, item in doc["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    assert operations == PUBLIC_OPERATIONS  # no /health, /ready, /asyncapi*, /docs, /openapi.json


async def test_request_and_response_schemas_are_the_serializers_fields(client) -> None:
    doc = await _document(client)
    schemas = doc["components"]["schemas"]

    def request_schema(path: str) -> dict[str, Any]:
        ref = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        return schemas[ref["$ref"].rsplit("/", 1)[1]]

    register_body = request_schema("/auth/register")
    assert {"email", "password", "full_name", "role"} <= set(register_body["properties"])
    assert set(register_body["required"]) == {"email", "password"}
    assert register_body["additionalProperties"] is False  # unknown fields are refused
    role = register_body["properties"]["role"]
    role_enum = schemas[_refs(role)[0].rsplit("/", 1)[1]]["enum"]
    assert set(role_enum) == {"customer", "organizer"}
    assert set(request_schema("/auth/login")["required"]) == {"email", "password"}
    assert set(request_schema("/auth/refresh")["required"]) == {"refresh_token"}

    created = doc["paths"]["/auth/register"]["post"]["responses"]["201"]
    assert created["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/User"}
    assert {"id", "email", "full_name", "role", "created_at"} <= set(schemas["User"]["properties"])
    assert {"access_token", "refresh_token", "token_type", "expires_in"} <= set(
        schemas["TokenPair"]["properties"]
    )


async def test_error_responses_are_problem_details(client) -> None:
    doc = await _document(client)
    expected = {
        ("/auth/register", "post"): {"400", "409", "422", "429"},
        ("/auth/login", "post"): {"400", "401", "422", "429"},
        ("/auth/refresh", "post"): {"400", "401", "422"},
        ("/auth/logout", "post"): {"400", "422"},
        ("/auth/me", "get"): {"401"},
        ("/auth/jwks.json", "get"): set(),
    }
    for (path, method), statuses in expected.items():
        responses = doc["paths"][path][method]["responses"]
        assert {s for s in responses if s.startswith("4")} == statuses, path
        for status in statuses:
            content = responses[status]["content"]
            assert list(content) == ["application/problem+json"], (path, status)
            assert content["application/problem+json"]["schema"] == {
                "$ref": "#/components/schemas/Problem"
            }
    problem = doc["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "errors"} <= set(problem["properties"])
    assert set(problem["required"]) == {"type", "title", "status", "detail"}


async def test_only_me_needs_the_bearer_scheme(client) -> None:
    doc = await _document(client)
    assert doc["components"]["securitySchemes"] == {
        # Same name and content as the FastAPI services' HTTPBearer: one scheme once merged.
        "HTTPBearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "Access token from POST /auth/login",
        },
    }
    for path, method in PUBLIC_OPERATIONS:
        security = doc["paths"][path][method].get("security")
        assert security == ([{"HTTPBearer": []}] if path == "/auth/me" else None), path


async def test_the_document_describes_what_the_routes_really_answer(client) -> None:
    """Real responses validate against the documented schemas (so the document is not fiction)."""
    doc = await _document(client)

    user, pair = await tokens_for(client)
    del user["password"]
    assert _conforms(doc, "User", user) == []
    assert _conforms(doc, "TokenPair", pair) == []
    me = await client.get("/auth/me", headers=bearer(pair["access_token"]))
    assert _conforms(doc, "User", me.json()) == []
    jwks = await client.get("/auth/jwks.json")
    assert _conforms(doc, "Jwks", jwks.json()) == []

    bad_body = {"email": "nope", "password": "x", "extra": 1}
    invalid = await client.post("/auth/register", json=bad_body)
    assert invalid.status_code == 422
    assert _conforms(doc, "Problem", invalid.json()) == []
    again = {"email": user["email"], "password": "whatever-long-1"}
    taken = await client.post("/auth/register", json=again)
    assert taken.status_code == 409 and _conforms(doc, "Problem", taken.json()) == []
    # ... and what the document forbids, the route refuses: an unknown field is not a User.
    assert _conforms(doc, "RegisterRequest", {"email": new_email(), "password": "p", "extra": 1})


async def test_auth_document_merges_into_the_gateway_document(client) -> None:
    from gateway.docs import merge_openapi
    from gateway.routing import routing_table

    doc = await _document(client)
    names = ("auth", "events", "booking", "payments", "notifications", "analytics")
    upstreams = routing_table({name: f"http://{name}" for name in names})
    fastapi_like = {
        "openapi": "3.1.0",
        "info": {"title": "x", "version": "1"},
        "paths": {},
        "components": {
            "securitySchemes": {
                "HTTPBearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Access token from POST /auth/login",
                }
            }
        },
    }
    merged = merge_openapi({"events": fastapi_like, "auth": doc}, upstreams, {})

    auth_paths = {p for p in merged["paths"] if p.startswith("/auth")}
    assert auth_paths == {p for p, _ in PUBLIC_OPERATIONS}
    assert list(merged["components"]["securitySchemes"]) == ["HTTPBearer"]  # not renamed
    assert merged["x-services"]["included"] == ["auth", "events"]


def _scripts_and_styles(html: str) -> list[str]:
    scripts = re.findall(r'<script[^>]*\ssrc="([^"]+)"', html)
    styles = [
        m
        for tag in re.findall(r"<link[^>]*>", html)
        if "stylesheet" in tag
        for m in re.findall(r'href="([^"]+)"', tag)
    ]
    return scripts + styles


@pytest.fixture
def assets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An assets directory holding exactly the files the pages load (plus one outside it)."""
    root = tmp_path / "node_modules"
    for url in (assets.SWAGGER_JS, assets.SWAGGER_CSS, assets.ASYNCAPI_JS, assets.ASYNCAPI_CSS):
        file = root / url.removeprefix(assets.PREFIX + "/")
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(f"/* {url} */")
    (tmp_path / "secret.txt").write_text("not an asset")
    monkeypatch.setattr(assets, "ASSETS_DIR", root)
    return root


@pytest.mark.parametrize("page", ["/docs", "/asyncapi"])
async def test_docs_pages_load_only_self_hosted_assets(client, assets_dir, page) -> None:
    resp = await client.get(page)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    html = resp.text
    loaded = _scripts_and_styles(html)
    assert len(loaded) == 2 and all(url.startswith("/_assets/") for url in loaded), loaded
    assert not [host for host in CDN_HOSTS if host in html]
    for url in loaded:  # every asset the page loads is served by auth itself
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert asset.text == f"/* {url} */"
    if page == "/docs":
        assert "url: '/openapi.json'" in html
    else:
        assert "Auth service" in html and "user_registered" in html  # auth's AsyncAPI document


async def test_assets_are_served_only_from_the_assets_directory(client, assets_dir) -> None:
    css = await client.get(assets.SWAGGER_CSS)
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    missing = await client.get("/_assets/swagger-ui-dist/nope.js")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    escapes = ("/_assets/../secret.txt", "/_assets/%2e%2e/secret.txt", "/_assets/..%2fsecret.txt")
    for escape in escapes:
        resp = await client.get(escape)
        assert resp.status_code in (400, 404), escape
        assert "not an asset" not in resp.text


async def test_asyncapi_page_embeds_the_relays_document(client) -> None:
    page = await client.get("/asyncapi")
    document = await client.get("/asyncapi.json")
    assert page.status_code == 200 and document.status_code == 200
    assert document.json()["info"]["title"] in page.text
