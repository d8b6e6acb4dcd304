"""Shared test set-up: every test run gets its own RabbitMQ vhost and its own databases.

CI and developers run against the machine's one RabbitMQ and PostgreSQL as the previous run
left them; a fresh vhost (``eb_test_<run>``) and database prefix (``ebt_<run>_``) mean no test
depends on leftovers, and both are removed at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import pytest

RUN_ID = os.environ.get("EB_TEST_RUN_ID") or uuid.uuid4().hex[:8]
VHOST = f"eb_test_{RUN_ID}"
DB_PREFIX = f"ebt_{RUN_ID}_"
SERVER_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/")
RABBIT_BASE = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/").rstrip("/")


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def pytest_configure(config: pytest.Config) -> None:
    from tests.support.tokens import jwks

    os.environ["EB_TEST_RUN_ID"] = RUN_ID
    os.environ["RABBITMQ_URL"] = f"{RABBIT_BASE}/{VHOST}"
    os.environ["DATABASE_URL"] = SERVER_URL
    os.environ["DATABASE_PREFIX"] = DB_PREFIX
    os.environ["ENVIRONMENT"] = "test"
    os.environ["LOG_FORMAT"] = "text"
    # In-process services of many test modules, the e2e platform and the fault harness's share
    # PostgreSQL's default 100 connections: small pools (each relay adds 2 of its own).
    os.environ.setdefault("DATABASE_POOL_SIZE", "4")
    os.environ.setdefault("EB_TEST_KEY_FILE", f"/tmp/eb_test_key_{RUN_ID}.pem")
    os.environ["JWT_JWKS"] = json.dumps(jwks())
    if not hasattr(config, "workerinput"):
        _rabbitmqctl("add_vhost", VHOST)
        _rabbitmqctl("set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")


def pytest_unconfigure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    with contextlib.suppress(Exception):
        _rabbitmqctl("delete_vhost", VHOST)
    with contextlib.suppress(Exception):
        import psycopg

        with psycopg.connect(SERVER_URL.rstrip("/") + "/postgres", autocommit=True) as conn:
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE %s", (DB_PREFIX + "%",)
                )
            ]
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    with contextlib.suppress(OSError):
        os.remove(os.environ["EB_TEST_KEY_FILE"])


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    return os.environ["RABBITMQ_URL"]


@pytest.fixture
async def amqp(rabbitmq_url: str) -> AsyncIterator[Any]:
    """A raw aio-pika channel on the test vhost, for inspecting queues as an outsider would."""
    import aio_pika

    conn = await aio_pika.connect_robust(rabbitmq_url)
    try:
        yield await conn.channel()
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def start_service() -> Callable[..., Any]:
    """``async with start_service(build, **settings) as svc`` runs a service against the real
    broker and database (migrations applied, consumers and relay running)."""

    @contextlib.asynccontextmanager
    async def _start(build: Callable[..., Any], connect_broker: bool = True, **overrides: Any):
        service = build(**overrides)
        await service.start(connect_broker=connect_broker)
        try:
            yield service
        finally:
            await service.stop()

    return _start


def service_fixture(
    build: Callable[..., Any], *, scope: Literal["function", "module"] = "function", **settings: Any
) -> Any:
    """A fixture: the service ``build`` makes with ``settings``, run by ``start_service``. Named
    by assignment: ``events = service_fixture(build)``."""

    @pytest.fixture(scope=scope)
    async def service(start_service: Callable[..., Any]) -> AsyncIterator[Any]:
        async with start_service(build, **settings) as svc:
            yield svc

    return service


def http_client(service: Any) -> Any:
    import httpx

    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=service.api), base_url="http://testserver"
    )
