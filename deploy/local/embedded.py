"""The embedded all-in-one mode: the whole platform in ONE process, for trying the API on a
machine without RabbitMQ or PostgreSQL (``make run`` picks it when either is unreachable,
``make run-embedded`` or ``EMBEDDED=1`` force it; see deploy/local/run.py).

What differs from the real platform is only the adapters:

* every service is built by its normal ``apps.<service>.bootstrap.build()`` (and auth is its
  normal Django application), with ``DATABASE_URL=sqlite:///.var/embedded/``: one SQLite file
  per service (``.var/embedded/eb_<service>.db``), migrated by the services' own migrations;
* the services' brokers are patched together with FastStream's ``TestRabbitBroker`` into one
  in-memory broker: a publish is delivered at once, in the same process, to every subscriber
  bound to it. The outbox relays publish exactly as on RabbitMQ; a consumer that fails (the
  kit's delivery policy nacks) makes the publish fail, so the outbox keeps the row and retries
  it (consumers are idempotent, so a retry is harmless; see :class:`InMemoryBroker`). The
  ``analytics`` fanout exchange, bound to ``eventbooking`` on RabbitMQ, is forwarded here by a
  small bridge (see :func:`analytics_bridge`);
* each service's FastAPI app is served on its usual port and the real gateway on 8000, all by
  uvicorn servers in one asyncio loop, so clients see the same API.

Not the real platform's guarantees, hence the start-up warning: one process, SQLite files on one
disk, no dead-letter queues (a message a consumer rejects is only logged), a failing consumer is
retried by the outbox without limit, and a crash mid-delivery relies on the outbox alone.
Ports: ``GATEWAY_PORT`` and ``<SERVICE>_PORT`` (``AUTH_PORT``... ``ANALYTICS_PORT``),
``SMTP_PORT`` for the local mail sink; ``EMBEDDED_DATA_DIR`` moves the SQLite files.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from faststream._internal.testing.broker import change_producer
from faststream.rabbit import RabbitBroker, RabbitMessage, RabbitQueue, TestRabbitBroker
from faststream.rabbit.testing import (
    FakeProducer,
    PatchedMessage,
    _is_handler_matches,
    build_message,
)

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("auth", "events", "booking", "payments", "notifications", "analytics")
DEFAULT_PORTS = {name: 8001 + i for i, name in enumerate(SERVICES)}

BANNER = (
    "EMBEDDED MODE: one process, in-memory broker, SQLite files in {data_dir} — NOT durable, "
    "for trying the API only; start RabbitMQ and PostgreSQL for the real platform"
)

log = logging.getLogger("embedded")


def ports_from_env() -> dict[str, int]:
    ports = {
        name: int(os.getenv(f"{name.upper()}_PORT", str(default)))
        for name, default in DEFAULT_PORTS.items()
    }
    ports["gateway"] = int(os.getenv("GATEWAY_PORT", "8000"))
    ports["smtp"] = int(os.getenv("SMTP_PORT", "1025"))
    return ports


def configure_environment(ports: dict[str, int], data_dir: Path) -> None:
    """Point every component at SQLite and at the others' embedded ports, before any settings
    object is built (settings read the environment when they are created)."""
    urls = {name: f"http://127.0.0.1:{ports[name]}" for name in SERVICES}
    os.environ["DATABASE_URL"] = f"sqlite:///{data_dir}/"
    os.environ["JWKS_URL"] = f"{urls['auth']}/auth/jwks.json"
    os.environ["SMTP_HOST"] = "127.0.0.1"
    os.environ["SMTP_PORT"] = str(ports["smtp"])
    for name, url in urls.items():
        os.environ[f"{name.upper()}_URL"] = url  # the gateway's upstreams; events' BOOKING_URL
    os.environ["DJANGO_SETTINGS_MODULE"] = "deploy.local.embedded_auth_settings"
    os.environ.setdefault("LOG_FORMAT", "text")
    # The auth relay runs here, next to the other relays, not in a Django lifespan.
    os.environ.setdefault("OUTBOX_RELAY", "true")


def analytics_bridge() -> RabbitBroker:
    """RabbitMQ forwards the analytics facts from the ``eventbooking`` topic exchange to the
    ``analytics`` fanout exchange (an exchange-to-exchange binding, contracts.topology). The
    in-memory broker does not simulate such bindings, so this broker does it: one subscriber per
    forwarded routing key, re-publishing the message unchanged (same payload, id and headers)."""
    from contracts.topology import ANALYTICS_EXCHANGE, ANALYTICS_FACTS, DOMAIN_EXCHANGE

    bridge = RabbitBroker("amqp://embedded.invalid/", log_level=logging.DEBUG)
    forward = bridge.publisher(exchange=ANALYTICS_EXCHANGE, title="embedded-bridge:publish")

    for fact in ANALYTICS_FACTS:
        queue = RabbitQueue(f"embedded.bridge.{fact.routing_key}", routing_key=fact.routing_key)

        @bridge.subscriber(queue, DOMAIN_EXCHANGE, title=f"embedded-bridge.{fact.routing_key}")
        async def forward_fact(body: dict[str, Any], message: RabbitMessage) -> None:
            raw = message.raw_message
            await forward.publish(
                body,
                routing_key=raw.routing_key or "",
                message_id=message.message_id,
                correlation_id=message.correlation_id,
                message_type=raw.type,
                headers=dict(message.headers),
                content_type=message.content_type,
            )

    return bridge


class RedeliveryNeeded(Exception):
    """A consumer asked for the message again (a transient failure): the publish fails, so the
    publishing outbox keeps the row and relays it again later, as RabbitMQ would redeliver."""


# What the consumer now running answered: one ``requeue`` flag per nack/reject.
_VERDICT: contextvars.ContextVar[list[bool]] = contextvars.ContextVar("embedded_verdict")


class _Delivery(PatchedMessage):
    """One in-memory delivery; it tells FastStream it can still be acked (``locked`` False,
    else FastStream skips the nack) and records the consumer's nack/reject in ``_VERDICT``."""

    @property
    def locked(self) -> bool:
        return False

    async def nack(self, multiple: bool = False, requeue: bool = True) -> None:
        _VERDICT.get().append(requeue)

    async def reject(self, requeue: bool = False) -> None:
        _VERDICT.get().append(requeue)


class _RedeliveringProducer(FakeProducer):
    """The test broker's in-process delivery, with the one thing an embedded platform needs on
    top: a message a consumer nacks is not lost. ``TestRabbitBroker`` makes ack/nack no-ops, so
    the kit's delivery policy (nack + requeue on a transient failure) would otherwise drop it."""

    async def publish(self, cmd: Any) -> None:
        incoming = await build_message(
            message=cmd.body,
            exchange=cmd.exchange,
            routing_key=cmd.destination,
            correlation_id=cmd.correlation_id,
            headers=cmd.headers,
            reply_to=cmd.reply_to,
            serializer=self.broker.config.fd_config._serializer,
            codec=self.codec,
            id_generator=self.broker.config.id_generator,
            **cmd.message_options,
        )
        object.__setattr__(incoming, "__class__", _Delivery)  # aio-pika locks its attributes
        failures: list[str] = []
        for handler in self.subscribers:
            if not _is_handler_matches(
                handler, incoming.routing_key, incoming.headers, cmd.exchange
            ):
                continue
            # Every bound consumer gets its delivery, even if an earlier one failed (they are
            # independent queues on RabbitMQ); a retry reaches all again, and those that had it
            # already skip it (idempotent consumers, kit.consuming.consume_once).
            verdict: list[bool] = []
            token = _VERDICT.set(verdict)
            try:
                await handler.process_message(incoming)
            except Exception as exc:  # noqa: BLE001 - a consumer without the kit's policy
                failures.append(f"{handler.queue.name}: {exc!r}")
            else:
                if any(verdict):
                    failures.append(f"{handler.queue.name} asked for a redelivery")
                elif verdict:  # rejected without requeue: RabbitMQ would dead-letter it
                    log.error(
                        "%s dead-lettered message %s (the embedded mode keeps no "
                        "dead-letter queue)",
                        handler.queue.name,
                        incoming.message_id,
                    )
            finally:
                _VERDICT.reset(token)
        if failures:
            raise RedeliveryNeeded("; ".join(failures))


class InMemoryBroker(TestRabbitBroker):
    """Several services' brokers patched together into one in-process broker."""

    def _fake_start(self, broker: RabbitBroker, *args: Any, **kwargs: Any) -> None:
        super()._fake_start(broker, *args, **kwargs)
        # Not a test: keep no record of every message handled (it would grow without end).
        for subscriber in broker.subscribers:
            for call in subscriber.calls:
                call.handler.reset_test()

    @contextlib.contextmanager
    def _patch_producer(self, broker: RabbitBroker) -> Iterator[None]:
        producer = _RedeliveringProducer(broker, self.brokers)
        with change_producer(broker.config.broker_config, producer):
            yield


class _Server:
    """A uvicorn server that leaves signals to us (several share one process)."""

    def __init__(self, name: str, app: Any, port: int, *, lifespan: str = "off", **kw: Any) -> None:
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        self.name = name
        self.port = port
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            lifespan=lifespan,
            access_log=False,
            log_config=None,
            timeout_graceful_shutdown=10,
            **kw,
        )
        self.server = Server(config)
        self.task: asyncio.Task[Any] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._serve(), name=f"http-{self.name}")

    async def _serve(self) -> None:
        try:
            await self.server.serve()
        except SystemExit:  # uvicorn's answer to a port in use: stop the others cleanly instead
            log.error("%s could not serve on port %d", self.name, self.port)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            with contextlib.suppress(Exception):
                await self.task


def _register_sqlite_now() -> None:
    """Auth's outbox column defaults to ``now()`` (transaction time, as the kit's); SQLite has no
    such function, so each auth connection gets one (UTC, Django's SQLite datetime format)."""
    from datetime import UTC, datetime

    from django.db.backends.signals import connection_created

    def now() -> str:
        return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def add_now(sender: Any, connection: Any, **_: Any) -> None:
        if connection.vendor == "sqlite":
            connection.connection.create_function("now", 0, now)

    connection_created.connect(add_now, weak=False)


def prepare_auth() -> None:
    """What ``auth.core.startup.prepare`` does, without its PostgreSQL-only parts (CREATE
    DATABASE, advisory lock): signing key, migrations, the admin account."""
    from django.core.management import call_command
    from django.db import connections

    from auth.accounts.keys import key_ring
    from auth.core.startup import admin_bootstrap

    key_ring()
    call_command("migrate", interactive=False, verbosity=0)
    connections.close_all()
    admin_bootstrap()


async def wait_ready(urls: dict[str, str], timeout: float = 60) -> list[str]:
    """Poll every /ready; returns the names still not ready after ``timeout``."""
    import aiohttp

    from deploy.local.ready import ready

    pending = dict(urls)
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while pending and time.monotonic() < deadline:
            results = await asyncio.gather(*(ready(session, u) for u in pending.values()))
            for name, ok in zip(list(pending), results, strict=True):
                if ok:
                    pending.pop(name)
            if pending:
                await asyncio.sleep(0.2)
    return list(pending)


async def run(ports: dict[str, int], data_dir: Path) -> int:
    configure_environment(ports, data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)

    from observability import configure_telemetry

    configure_telemetry(
        "embedded", log_level=os.getenv("LOG_LEVEL", "INFO"), log_format=os.environ["LOG_FORMAT"]
    )
    logging.getLogger("django.request").setLevel(logging.ERROR)
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    print(BANNER.format(data_dir=_shown(data_dir)), flush=True)

    import django

    _register_sqlite_now()
    django.setup()
    from django.core.asgi import get_asgi_application

    from apps.analytics.bootstrap import build as build_analytics
    from apps.booking.bootstrap import build as build_booking
    from apps.events.bootstrap import build as build_events
    from apps.notifications.bootstrap import build as build_notifications
    from deploy.local.smtp_sink import MailSink, start_sink
    from apps.payments.bootstrap import build as build_payments
    from auth.core.lifespan import RUNNING, AuthApplication
    from auth.relay import AuthRelay
    from deploy.local.ready import summary
    from gateway.app import create_app
    from gateway.config import GatewaySettings

    await asyncio.to_thread(prepare_auth)
    services = {
        "events": build_events(),
        "booking": build_booking(),
        "payments": build_payments(),
        "notifications": build_notifications(),
        "analytics": build_analytics(),
    }
    auth_relay = AuthRelay()
    auth_app = AuthApplication(get_asgi_application(), outbox_relay=False)
    bridge = analytics_bridge()
    brokers = [auth_relay.broker, *(s.broker for s in services.values()), bridge]

    mail_dir = data_dir / "mail"
    smtp = await start_sink(MailSink(mail_dir), port=ports["smtp"])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    servers: list[_Server] = []
    status = 0
    try:
        async with InMemoryBroker(*brokers):
            for service in services.values():
                await service.start(connect_broker=False)
            auth_relay.start_relaying()
            auth_app.relay = auth_relay  # its /ready asks this relay's broker
            RUNNING["app"] = auth_app

            servers.append(_Server("auth", auth_app, ports["auth"]))
            servers += [_Server(name, s.api, ports[name]) for name, s in services.items()]
            servers.append(
                _Server(
                    "gateway",
                    create_app(GatewaySettings()),
                    ports["gateway"],
                    lifespan="on",
                    proxy_headers=False,
                )
            )
            for server in servers:
                server.start()

            urls = {name: f"http://127.0.0.1:{ports[name]}" for name in (*SERVICES, "gateway")}
            waiting = asyncio.create_task(wait_ready(urls))
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait(
                [waiting, stopped, *(s.task for s in servers if s.task)],
                return_when=asyncio.FIRST_COMPLETED,
            )
            exited = [s.name for s in servers if s.task and s.task.done()]
            if exited:
                print(
                    f"NOT STARTED: {', '.join(exited)} could not serve (see the log above)",
                    flush=True,
                )
                waiting.cancel()
                status = 1
            elif waiting.done():
                not_ready = waiting.result()
                if not_ready:
                    print(f"NOT READY: {', '.join(not_ready)} (see the log above)", flush=True)
                    status = 1
                else:
                    print(BANNER.format(data_dir=_shown(data_dir)), flush=True)
                    print(
                        summary(
                            urls["gateway"], ports["smtp"], mail_dir=_shown(mail_dir), embedded=True
                        ),
                        flush=True,
                    )
                    await stop.wait()
            else:
                waiting.cancel()
            print("embedded: stopping (in-flight requests and messages finish first)", flush=True)
            # The entry point first, then the services behind it, then their relays and workers.
            gateway, backends = servers[-1], servers[:-1]
            await gateway.stop()
            await asyncio.gather(*(s.stop() for s in backends))
            servers.clear()
            for service in services.values():
                await service.stop()
            RUNNING.pop("app", None)
            await auth_relay.stop()
    finally:
        for server in servers:
            await server.stop()
        smtp.close()
    print("embedded: stopped", flush=True)
    return status


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main() -> None:
    data_dir = Path(os.getenv("EMBEDDED_DATA_DIR", str(ROOT / ".var" / "embedded"))).resolve()
    sys.exit(asyncio.run(run(ports_from_env(), data_dir)))


if __name__ == "__main__":
    main()
