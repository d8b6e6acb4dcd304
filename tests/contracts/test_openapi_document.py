"""The gateway's merged OpenAPI document is fit for client generators: short unique operation
ids made by one rule, ``servers``, ``security`` on every operation (``[]`` exactly where the
gateway lets a request through without a token), every error response the one shared
``Problem`` schema; and openapi-python-client makes a typed client of it without a warning.

The document is built in-process from the services' apps (``tools.openapi_doc``), merged by the
gateway's own ``merge_openapi``: a route added to any service later is checked here too."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from gateway.routing import ROUTES, is_public
from kit.openapi import OPERATION_ID, operation_id
from kit.problems import PROBLEM_JSON, PROBLEM_SCHEMA
from kit.service import Service, ServiceSpec
from tools.openapi_doc import PACKAGE, generate_sdk, merged_document

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return merged_document()


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def test_the_document_is_valid_openapi_31_with_servers(doc) -> None:
    assert list(OPENAPI_31_VALIDATOR.iter_errors(doc)) == []
    assert doc["servers"] and all("url" in s for s in doc["servers"])
    assert sorted(doc["x-services"]["included"]) == sorted(name for name, _, _ in ROUTES)
    assert {"analytics", "auth", "booking", "events", "notifications", "payments"} <= set(
        doc["x-services"]["included"]
    )
    assert len(operations(doc)) >= 25


def test_every_operation_has_a_short_unique_id(doc) -> None:
    ids = [op.get("operationId", "") for _, _, op in operations(doc)]
    bad = [i for i in ids if not OPERATION_ID.match(i) or len(i) > 40]
    assert bad == []
    assert len(ids) == len(set(ids))
    by_route = {(m, p): op["operationId"] for m, p, op in operations(doc)}
    assert by_route[("post", "/booking/create")] == "bookings_create"
    assert by_route[("post", "/events/create")] == "events_create"
    assert by_route[("post", "/auth/login")] == "auth_login"
    assert by_route[("post", "/payments/process")] == "payments_process"
    assert by_route[("get", "/analytics/report/daily")] == "reports_get_daily"


def test_every_operation_states_its_security_as_the_gateway_applies_it(doc) -> None:
    for method, path, op in operations(doc):
        assert "security" in op, (method, path)
        sample = path.replace("{", "").replace("}", "")
        if is_public(method.upper(), sample):
            assert op["security"] == [], (method, path)
        else:
            assert op["security"] == [{"HTTPBearer": []}], (method, path)
            assert "401" in op["responses"], (method, path)
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_every_error_response_is_the_one_shared_problem(doc) -> None:
    schemas = doc["components"]["schemas"]
    assert schemas["Problem"] == PROBLEM_SCHEMA
    assert [n for n in schemas if "Problem" in n and n != "Problem"] == []
    assert "HTTPValidationError" not in schemas
    for method, path, op in operations(doc):
        errors = {s: r for s, r in op["responses"].items() if s[:1] in ("4", "5")}
        assert {"429", "502", "503", "504"} <= set(errors), (method, path)
        for status, response in errors.items():
            assert response.get("description"), (method, path, status)
            assert response["content"] == {PROBLEM_JSON: {"schema": PROBLEM_REF}}, (
                method,
                path,
                status,
            )


def test_the_id_rule_covers_routes_added_later() -> None:
    assert operation_id("bookings", "create_booking") == "bookings_create"
    assert operation_id("events", "list_events") == "events_list"
    assert operation_id("events", "add_ticket_type") == "events_add_ticket_type"
    assert operation_id("auth", "login") == "auth_login"

    router = APIRouter()

    @router.post("/vouchers/redeem")
    async def redeem_voucher() -> dict[str, str]:
        return {}

    @router.get("/vouchers/odd", operation_id="vouchers_explicit_name")
    async def whatever() -> dict[str, str]:
        return {}

    spec = ServiceSpec(
        name="voucher", title="t", description="d", migrations=None, routers=[router]
    )
    spec.resource = "vouchers"
    api = Service(spec, rabbitmq_url="amqp://guest:guest@rabbitmq:5672/").api.openapi()
    assert api["paths"]["/vouchers/redeem"]["post"]["operationId"] == "vouchers_redeem"
    assert api["paths"]["/vouchers/odd"]["get"]["operationId"] == "vouchers_explicit_name"


def test_openapi_python_client_generates_a_typed_client_without_warnings(tmp_path: Path) -> None:
    generate_sdk(tmp_path)  # raises on a warning or a failure
    sys.path.insert(0, str(tmp_path))
    try:
        create = importlib.import_module(f"{PACKAGE}.api.booking.bookings_create")
        models = importlib.import_module(f"{PACKAGE}.models")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith(PACKAGE)]:
            del sys.modules[name]
    assert callable(create.asyncio_detailed)
    assert {"BookingCreate", "BookingView", "Problem", "EventCreate"} <= set(dir(models))
