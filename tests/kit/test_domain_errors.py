"""Domain errors carry their own HTTP status and problem code (``kit.errors.DomainError``); the
one handler the kit's app factory installs renders any of them as RFC 9457 problem details, and
an idempotent request stores the same body for its key's replays."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from kit.db import Database
from kit.uow import UnitOfWork
from kit.errors import DomainError
from kit.idempotency import IDEMPOTENCY, idempotent
from kit.problems import PROBLEM_JSON, TYPE_BASE, Conflict, install_problem_handlers
from kit.settings import ServiceSettings


class NotEnoughSeats(DomainError):
    status, code = 409, "not-enough-seats"


class WindowTooLong(DomainError):
    field_in = "query"


class Unavailable(DomainError):
    status, code, title = 503, "upstream-unavailable", "Upstream unavailable"
    headers = {"Retry-After": "1"}


class TooManyTickets(DomainError):
    field_in, error_type = "body", "too_many_tickets"


def app_raising(error: Exception) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/raise")
    async def raise_it() -> None:
        raise error

    return app


async def answer(error: Exception) -> httpx.Response:
    transport = httpx.ASGITransport(app=app_raising(error))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get("/raise")


async def test_status_code_title_and_extra_fields() -> None:
    response = await answer(NotEnoughSeats("Only 3 seats left.", available=3))
    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json() == {
        "type": TYPE_BASE + "not-enough-seats",
        "title": "Conflict",
        "status": 409,
        "detail": "Only 3 seats left.",
        "instance": "/raise",
        "available": 3,
    }


async def test_an_error_about_one_input_names_it() -> None:
    response = await answer(WindowTooLong("At most 366 days.", field="from"))
    assert response.status_code == 422
    assert response.json()["type"] == TYPE_BASE + "validation-error"
    assert response.json()["errors"] == [
        {"field": "query.from", "message": "At most 366 days.", "type": "value_error"}
    ]
    typed = (
        await answer(TooManyTickets("At most 10.", field="quantity", max_per_booking=10))
    ).json()
    assert typed["errors"] == [
        {"field": "body.quantity", "message": "At most 10.", "type": "too_many_tickets"}
    ]
    assert typed["max_per_booking"] == 10


async def test_a_field_without_a_location_is_not_listed() -> None:
    body = (await answer(NotEnoughSeats("No.", field="quantity"))).json()
    assert "errors" not in body and "field" not in body


async def test_own_title_and_headers() -> None:
    response = await answer(Unavailable("Try again."))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["title"] == "Upstream unavailable"


async def test_kit_problems_are_domain_errors_too() -> None:
    assert issubclass(Conflict, DomainError)
    response = await answer(Conflict("Taken.", code="slot-taken", slot=2))
    assert response.json() == {
        "type": TYPE_BASE + "slot-taken",
        "title": "Conflict",
        "status": 409,
        "detail": "Taken.",
        "instance": "/raise",
        "slot": 2,
    }


@pytest.fixture
async def database(tmp_path: Path) -> Any:
    url = f"sqlite+aiosqlite:///{tmp_path / 'kit.db'}"
    db = Database(ServiceSettings(service_name="kiterrors", database_url=url), None)
    async with db.engine.begin() as conn:
        await conn.run_sync(IDEMPOTENCY.metadata.create_all)
    yield db
    await db.dispose()


async def test_an_idempotent_request_stores_the_domain_error(database: Database) -> None:
    runs = 0

    async def run(uow: UnitOfWork) -> tuple[int, Any]:
        nonlocal runs
        runs += 1
        raise NotEnoughSeats("Only 3 seats left.", available=3)

    key = str(uuid.uuid4())
    first = await idempotent(database, scope="s", key=key, body={"q": 4}, run=run)
    again = await idempotent(database, scope="s", key=key, body={"q": 4}, run=run)
    assert runs == 1
    assert first.status_code == again.status_code == 409
    assert first.body == again.body
    assert again.headers["idempotent-replayed"] == "true"
