"""The outbox relay of the auth service: a FastStream app publishing ``user_registered``.

Registration writes the message to the ``outbox`` table in the user's transaction (see
:mod:`auth.accounts.outbox`); the kit's :class:`OutboxRelay` publishes committed rows through the
declared publisher (persistent, confirmed, ``mandatory``) and deletes them. The FastStream app
also gives auth its AsyncAPI document: ``faststream docs gen auth.relay:stream``.

Runs inside the HTTP process by default (``OUTBOX_RELAY=true``, see :mod:`auth.core.lifespan`),
or on its own: ``python -m auth.relay`` (several may run: rows are claimed ``SKIP LOCKED``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from faststream import FastStream
from faststream.rabbit import RabbitBroker
from faststream.specification import AsyncAPI

from kit.asyncapi import SCHEMA_VERSION, ServiceAsyncAPI
from kit.db import Database
from kit.broker import make_broker
from kit.publishing import declare_publishers, outbox_publish
from kit.outbox import OutboxRelay
from kit.settings import API_VERSION
from auth.config.env import AuthSettings, load
from contracts.messages import UserRegistered
from contracts.topology import declare_topology

log = logging.getLogger(__name__)

PUBLISHES = (UserRegistered,)


class AuthRelay:
    """Broker, publishers and the outbox relay over the auth database; nothing started yet."""

    def __init__(self, settings: AuthSettings | None = None) -> None:
        self.settings = settings or load()
        # Django owns auth's schema (migrations), so the kit's Database gets none to run.
        self.db = Database(self.settings, migrations=None)
        self.broker: RabbitBroker = make_broker(self.settings)
        self.publishers = declare_publishers(self.broker, PUBLISHES)
        self.relay = OutboxRelay(
            self.db,
            outbox_publish(self.publishers),
            batch_size=self.settings.outbox_batch_size,
            poll_seconds=self.settings.outbox_poll_seconds,
        )
        self.asyncapi = ServiceAsyncAPI(
            "auth",
            AsyncAPI(
                self.broker,
                title="Auth service",
                version=API_VERSION,
                description="Accounts and tokens. Publishes `user_registered` when an account is "
                "created (through a transactional outbox: published at least once, after the "
                "account commits).",
                schema_version=SCHEMA_VERSION,
            ),
        )
        self._task: asyncio.Task[Any] | None = None

    async def start(self) -> None:
        """Connect, declare the platform topology, relay until :meth:`stop`."""
        await self.broker.connect()
        await declare_topology(self.broker)
        await self.broker.start()
        self.start_relaying()

    def start_relaying(self) -> None:
        self._task = asyncio.create_task(self.relay.run(), name="auth-outbox-relay")

    async def stop(self) -> None:
        self.relay.stop()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 10)
            self._task = None
        with contextlib.suppress(Exception):
            await self.broker.stop()
        await self.db.dispose()

    async def ready(self) -> bool:
        return bool(await self.broker.ping(timeout=2))


def build(**overrides: Any) -> AuthRelay:
    """Like every service's ``bootstrap.build``: e.g. ``build(rabbitmq_url=...).asyncapi``."""
    return AuthRelay(AuthSettings(service_name="auth", **overrides))


relay = AuthRelay()
broker = relay.broker
asyncapi = relay.asyncapi


async def _prepare_database() -> None:
    from auth.core import startup

    await asyncio.to_thread(startup.database_prepare)


async def _after_broker_started() -> None:
    await declare_topology(broker)
    relay.start_relaying()


async def _before_shutdown() -> None:
    relay.relay.stop()
    if relay._task is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(relay._task, 10)


stream = FastStream(
    broker,
    specification=relay.asyncapi.spec,
    on_startup=[_prepare_database],
    after_startup=[_after_broker_started],
    on_shutdown=[_before_shutdown],
    after_shutdown=[relay.db.dispose],
)


def main() -> None:
    """``python -m auth.relay``: relay auth's outbox until SIGINT/SIGTERM."""
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "auth.config.settings")
    import django

    from observability import configure_telemetry

    configure_telemetry(
        "auth", log_level=relay.settings.log_level, log_format=relay.settings.log_format
    )
    django.setup()
    asyncio.run(stream.run())


if __name__ == "__main__":
    main()
