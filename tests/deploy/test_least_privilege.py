"""Least privilege between services, proven on the machine's real PostgreSQL and RabbitMQ.

PostgreSQL: the role/database SQL the deployments ship (``deploy/k8s/base/postgres-setup.sh`` +
``postgres-roles.sql``) is applied to databases with a unique prefix, so its roles are unique
too (roles are cluster-wide). The server trusts local connections, so the roles need no
password here, but CONNECT privileges are enforced as anywhere else.

RabbitMQ: the definitions file the deployments load (``deploy/k8s/base/rabbitmq-definitions.json``)
is rendered with passwords by ``deploy/compose/rabbitmq_definitions.py`` and imported with
``rabbitmqctl import_definitions``, with its users renamed (unique) and its vhost replaced by a
test vhost: the permissions and topic permissions under test are the file's own. Everything is
deleted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import psycopg
import pytest
from aiormq.exceptions import ChannelAccessRefused, ProbableAuthenticationError

from contracts import messages
from contracts.envelope import Envelope
from contracts.topology import declare_topology
from faststream.rabbit import RabbitBroker

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose"
# The one copy of the role SQL and the definitions, shared by compose and kustomize.
K8S_BASE = ROOT / "deploy" / "k8s" / "base"
PG_HOST, PG_PORT = "127.0.0.1", 5432
AMQP_HOST = "127.0.0.1:5672"

SERVICES = ["auth", "events", "booking", "payments", "notifications", "analytics"]
APPS = SERVICES[1:]  # built by apps/<name>/bootstrap.py


def bootstrap(service: str) -> Any:
    return importlib.import_module(f"apps.{service}.bootstrap")


def build(service: str, **settings: Any) -> Any:
    return bootstrap(service).build(**settings)


def publishes(service: str) -> set[str]:
    """What ``service`` publishes, as its code says (auth: its relay, user_registered)."""
    if service == "auth":
        return {messages.UserRegistered.routing_key}
    return {m.routing_key for m in bootstrap(service).SPEC.publishes}


ALL_ROUTING_KEYS = sorted(
    {
        cls.routing_key
        for cls in vars(messages).values()
        if isinstance(cls, type) and issubclass(cls, Envelope) and "routing_key" in vars(cls)
    }
)

pytestmark = [
    pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed"),
    pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="rabbitmqctl is not installed"),
]


# --- PostgreSQL -------------------------------------------------------------------------------


def _superuser() -> psycopg.Connection:
    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user="postgres", dbname="postgres", autocommit=True
    )


def _apply_setup(prefix: str, services: list[str]) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PGHOST": PG_HOST,
        "PGPORT": str(PG_PORT),
        "PGUSER": "postgres",
        "DATABASE_PREFIX": prefix,
        "EB_SERVICES": " ".join(services),
    }
    env.update({f"DB_PASSWORD_{s.upper()}": "" for s in services})  # trust: no password needed
    return subprocess.run(
        ["sh", str(K8S_BASE / "postgres-setup.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def pg_prefix() -> Iterator[str]:
    prefix = f"eblp_{uuid.uuid4().hex[:8]}_"
    # payments' database as it was before the per-service roles: created and migrated by the
    # superuser. The setup must hand its objects over to payments' role.
    legacy = build(
        "payments",
        database_url=f"postgresql://postgres@{PG_HOST}:{PG_PORT}/",
        database_prefix=prefix,
    )
    asyncio.run(_prepare(legacy))
    result = _apply_setup(prefix, ["booking", "payments"])
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        # Applying it again (every start does) changes nothing and does not fail.
        again = _apply_setup(prefix, ["booking", "payments"])
        assert again.returncode == 0, again.stdout + again.stderr
        yield prefix
    finally:
        with _superuser() as conn:
            for service in ["booking", "payments"]:
                conn.execute(f'DROP DATABASE IF EXISTS "{prefix}{service}" WITH (FORCE)')
                conn.execute(f'DROP ROLE IF EXISTS "{prefix}{service}"')


async def _prepare(service: Any) -> None:
    try:
        await service.db.prepare()
    finally:
        await service.db.dispose()


def _role_url(prefix: str, service: str) -> str:
    return f"postgresql://{prefix}{service}@{PG_HOST}:{PG_PORT}/"


async def _write_and_read_inbox(service: Any) -> tuple[str, int]:
    """As the service's own engine: insert into one of its tables and read it back."""
    import sqlalchemy as sa

    try:
        async with service.db.engine.begin() as conn:
            await conn.execute(
                sa.text("INSERT INTO inbox (consumer, message_id) VALUES ('least-privilege', :id)"),
                {"id": uuid.uuid4()},
            )
            user = (await conn.execute(sa.text("SELECT current_user"))).scalar_one()
            count = (
                await conn.execute(
                    sa.text("SELECT count(*) FROM inbox WHERE consumer = 'least-privilege'")
                )
            ).scalar_one()
        return user, count
    finally:
        await service.db.dispose()


def test_setup_refuses_a_forgotten_password_variable() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DB_PASSWORD_")}
    result = subprocess.run(
        ["sh", str(K8S_BASE / "postgres-setup.sh")],
        env={
            **env,
            "PGHOST": PG_HOST,
            "PGUSER": "postgres",
            "DATABASE_PREFIX": "eblp_never_",
            "EB_SERVICES": "booking",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "DB_PASSWORD_BOOKING is not set" in result.stderr


def test_service_roles_are_login_only(pg_prefix: str) -> None:
    with _superuser() as conn:
        rows = conn.execute(
            "SELECT rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, "
            "rolbypassrls FROM pg_roles WHERE rolname LIKE %s ORDER BY rolname",
            (pg_prefix + "%",),
        ).fetchall()
    assert rows == [
        (f"{pg_prefix}booking", True, False, False, False, False, False),
        (f"{pg_prefix}payments", True, False, False, False, False, False),
    ]


def test_booking_migrates_and_uses_its_database_with_its_own_role(pg_prefix: str) -> None:
    booking = build(
        "booking", database_url=_role_url(pg_prefix, "booking"), database_prefix=pg_prefix
    )
    asyncio.run(_prepare(booking))  # every migration, as booking's role (it owns the database)
    again = build(
        "booking", database_url=_role_url(pg_prefix, "booking"), database_prefix=pg_prefix
    )
    assert asyncio.run(_write_and_read_inbox(again)) == (f"{pg_prefix}booking", 1)


def test_a_database_migrated_by_the_superuser_is_handed_to_the_services_role(
    pg_prefix: str,
) -> None:
    payments = build(
        "payments", database_url=_role_url(pg_prefix, "payments"), database_prefix=pg_prefix
    )
    asyncio.run(_prepare(payments))  # nothing left to migrate, but it may read alembic_version
    payments = build(
        "payments", database_url=_role_url(pg_prefix, "payments"), database_prefix=pg_prefix
    )
    assert asyncio.run(_write_and_read_inbox(payments)) == (f"{pg_prefix}payments", 1)
    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user="postgres", dbname=f"{pg_prefix}payments"
    ) as conn:
        foreign = conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
            "AND relowner <> %s::regrole",
            (f"{pg_prefix}payments",),
        ).fetchall()
    assert foreign == []


@pytest.mark.parametrize(("role", "database"), [("booking", "payments"), ("payments", "booking")])
def test_a_role_cannot_connect_to_another_services_database(
    pg_prefix: str, role: str, database: str
) -> None:
    # psycopg reports a refused connection as OperationalError, with the server's message.
    with pytest.raises(
        psycopg.OperationalError, match=r"permission denied for database(.|\n)*CONNECT privilege"
    ):
        psycopg.connect(
            host=PG_HOST, port=PG_PORT, user=f"{pg_prefix}{role}", dbname=f"{pg_prefix}{database}"
        ).close()


# --- RabbitMQ ---------------------------------------------------------------------------------


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def _load_renderer() -> Any:
    spec = importlib.util.spec_from_file_location(
        "rabbitmq_definitions", COMPOSE / "rabbitmq_definitions.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DEFINITIONS = json.loads((K8S_BASE / "rabbitmq-definitions.json").read_text())


class Broker:
    """The definitions file imported into a test vhost, its users renamed ``<tag>_<name>``."""

    def __init__(self) -> None:
        tag = f"eblp{uuid.uuid4().hex[:8]}"
        self.vhost = f"{tag}_vhost"
        self.users = {u["name"]: f"{tag}_{u['name']}" for u in DEFINITIONS["users"]}
        self.passwords = {name: uuid.uuid4().hex for name in self.users}

    def url(self, name: str, password: str | None = None) -> str:
        pw = self.passwords[name] if password is None else password
        return f"amqp://{self.users[name]}:{pw}@{AMQP_HOST}/{self.vhost}"

    def definitions(self, rendered: dict[str, Any]) -> dict[str, Any]:
        def move(entry: dict[str, Any]) -> dict[str, Any]:
            return {**entry, "user": self.users[entry["user"]], "vhost": self.vhost}

        return {
            **rendered,
            "users": [{**u, "name": self.users[u["name"]]} for u in rendered["users"]],
            "vhosts": [{"name": self.vhost}],
            "permissions": [move(p) for p in rendered["permissions"]],
            "topic_permissions": [move(p) for p in rendered["topic_permissions"]],
        }

    def remove(self) -> None:
        """Delete the test's users and vhost (whatever of them the import got to make)."""
        for user in self.users.values():
            with contextlib.suppress(subprocess.CalledProcessError):
                _rabbitmqctl("delete_user", user)
        with contextlib.suppress(subprocess.CalledProcessError):
            _rabbitmqctl("delete_vhost", self.vhost)


def _import(definitions: dict[str, Any]) -> None:
    """``rabbitmqctl import_definitions`` (from stdin: the CLI reads it, not the server), then
    wait for it: the import finishes asynchronously."""
    subprocess.run(
        ["rabbitmqctl", "-q", "import_definitions"],
        input=json.dumps(definitions),
        text=True,
        check=True,
        capture_output=True,
        timeout=60,
    )
    (vhost,) = definitions["vhosts"]
    expected = len(definitions["topic_permissions"])
    for _ in range(100):
        listed = subprocess.run(
            [
                "rabbitmqctl",
                "-q",
                "--no-table-headers",
                "list_topic_permissions",
                "-p",
                vhost["name"],
            ],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        if len(listed.splitlines()) >= expected:
            return
        time.sleep(0.1)
    raise AssertionError("the definitions were not imported")


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    b = Broker()
    env = {f"RABBITMQ_PASSWORD_{name.upper()}": pw for name, pw in b.passwords.items()}
    rendered = _load_renderer().render(DEFINITIONS, env)
    try:
        _import(b.definitions(rendered))
        # The whole topology, declared once by the administrator, so that the queues the
        # consumption tests use exist whichever test runs first.
        asyncio.run(_declare_topology(b.url("admin")))
        yield b
    finally:
        b.remove()


async def _declare_topology(url: str) -> None:
    broker = RabbitBroker(url)
    await broker.connect()
    try:
        await declare_topology(broker)
    finally:
        await broker.stop()


@contextlib.asynccontextmanager
async def _channel(url: str) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    conn = await aio_pika.connect(url)
    try:
        yield await conn.channel(publisher_confirms=True)
    finally:
        with contextlib.suppress(Exception):
            await conn.close()


async def _publish(url: str, routing_key: str, exchange: str = "eventbooking") -> None:
    async with _channel(url) as channel:
        target = (
            channel.default_exchange
            if exchange == ""
            else await channel.get_exchange(exchange, ensure=False)
        )
        await target.publish(aio_pika.Message(b"{}"), routing_key=routing_key)


def test_the_committed_definitions_hold_no_password() -> None:
    assert {u["password_hash"] for u in DEFINITIONS["users"]} == {""}
    assert set(SERVICES) | {"admin"} == {u["name"] for u in DEFINITIONS["users"]}


def test_rendering_refuses_a_missing_password() -> None:
    with pytest.raises(SystemExit, match="RABBITMQ_PASSWORD_BOOKING"):
        _load_renderer().render(DEFINITIONS, {"RABBITMQ_PASSWORD_ADMIN": "x"})


def test_a_user_from_the_committed_file_cannot_log_in() -> None:
    b = Broker()
    try:
        _import(b.definitions(DEFINITIONS))  # as committed: empty password hashes
        for password in ["", "guest", "booking"]:
            with pytest.raises(ProbableAuthenticationError):
                asyncio.run(aio_pika.connect(b.url("booking", password)))
    finally:
        b.remove()


def test_each_user_logs_in_with_its_own_password_only(broker: Broker) -> None:
    async def check() -> None:
        conn = await aio_pika.connect(broker.url("payments"))
        await conn.close()
        with pytest.raises(ProbableAuthenticationError):
            await aio_pika.connect(broker.url("payments", broker.passwords["booking"]))

    asyncio.run(check())


@pytest.mark.parametrize("service", APPS)
def test_a_service_starts_its_broker_as_its_own_user(broker: Broker, service: str) -> None:
    """What the service does at start-up: declare the topology, then start its consumers."""

    async def start() -> None:
        svc = build(service, rabbitmq_url=broker.url(service))
        await svc.broker.connect()
        try:
            await declare_topology(svc.broker)
            await svc.broker.start()
        finally:
            await svc.broker.stop()

    asyncio.run(start())


def test_auth_relay_declares_the_topology_as_auths_user(broker: Broker) -> None:
    asyncio.run(_declare_topology(broker.url("auth")))


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_may_publish_only_its_own_routing_keys(broker: Broker, service: str) -> None:
    async def check() -> None:
        own = publishes(service)
        for key in ALL_ROUTING_KEYS:
            if key in own:
                await _publish(broker.url(service), key)
            else:
                with pytest.raises(ChannelAccessRefused):
                    await _publish(broker.url(service), key)

    asyncio.run(check())


def test_payments_is_refused_booking_confirmed_and_may_send_payment_confirmed(
    broker: Broker,
) -> None:
    async def check() -> None:
        with pytest.raises(ChannelAccessRefused, match="booking_confirmed"):
            await _publish(broker.url("payments"), "booking_confirmed")
        await _publish(broker.url("payments"), "payment_confirmed")
        # It reached booking's queue (the topology routes it there).
        async with _channel(broker.url("booking")) as channel:
            queue = await channel.declare_queue("booking.payment_confirmed", passive=True)
            message = await queue.get(timeout=5, fail=True)
            await message.ack()

    asyncio.run(check())


@pytest.mark.parametrize("service", SERVICES)
def test_no_one_publishes_straight_into_a_queue(broker: Broker, service: str) -> None:
    with pytest.raises(ChannelAccessRefused):
        asyncio.run(_publish(broker.url(service), "booking.payment_confirmed", exchange=""))


@pytest.mark.parametrize(
    ("user", "queue"),
    [
        ("payments", "booking.payment_confirmed"),
        ("booking", "payments.booking_created"),
        ("notifications", "payments.booking_created"),
        ("events", "notifications.user_registered"),
        ("auth", "booking.event_created"),
        ("booking", "booking.event_created.dlq"),
    ],
)
def test_a_user_cannot_consume_another_services_queue(
    broker: Broker, user: str, queue: str
) -> None:
    async def consume() -> None:
        async with _channel(broker.url(user)) as channel:
            declared = await channel.declare_queue(queue, passive=True)
            await declared.consume(_ignore)

    with pytest.raises(ChannelAccessRefused):
        asyncio.run(consume())


async def _ignore(message: Any) -> None:
    pass


def test_a_service_consumes_its_own_queue(broker: Broker) -> None:
    async def consume() -> None:
        async with _channel(broker.url("booking")) as channel:
            declared = await channel.declare_queue("booking.event_created", passive=True)
            tag = await declared.consume(_ignore)
            await declared.cancel(tag)

    asyncio.run(consume())
