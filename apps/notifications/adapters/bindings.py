"""Which webhook-only message kinds reach the notifications service: its queues' bindings.

The service consumes some messages only to pass them on to webhooks (``booking_created``,
``payment_confirmed``, ``refund_failed``, ``ticket_checked_in``: see ``WEBHOOK_ONLY`` in
``entrypoints/messages.py``). Their queues are bound to the domain exchange only while some
endpoint subscribes to the kind. Without such webhooks the service does not receive, mark and
look up endpoints for every hold and payment of the platform: that was about a quarter of the
CPU the consumers spent on each hold of a flash sale (``bench/hold_cost.py``).

**Why no message is missed.** A registration binds its kinds *before* it commits, holding a
shared lock per kind until it commits; a kind is unbound only by :meth:`KindBindings.reconcile`,
which takes that lock exclusively, finds no endpoint subscribed and unbinds, one kind at a time
(PostgreSQL transaction advisory locks). So from the moment an endpoint exists, every message
of its kinds is routed to the queue, whatever the replicas do at once. Binding twice is
harmless, and everything else only ever errs towards bound: FastStream binds each subscriber's
queue when the service starts, and aio-pika binds again after a reconnect; the reconcile worker
(at start, then every ``WEBHOOK_BINDINGS_RECONCILE_SECONDS``) unbinds what nobody needs.

On SQLite (the embedded mode) every kind stays bound: the plain path, one process.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import sqlalchemy as sa
from aiormq.exceptions import AMQPError, ChannelInvalidStateError

from apps.notifications.adapters.tables import webhook_endpoint_kinds
from apps.notifications.domain import BrokerUnavailable
from contracts.topology import DOMAIN_EXCHANGE
from kit.uow import UnitOfWork

if TYPE_CHECKING:
    from faststream.rabbit import RabbitBroker, RabbitQueue
    from sqlalchemy.ext.asyncio import AsyncConnection

    from kit.db import Database

# The first key of the advisory locks of webhook kinds (the second is the kind's CRC-32).
LOCK_SPACE = 0x5EB0
_SHARED = sa.text("SELECT pg_advisory_xact_lock_shared(:space, :key)")
_EXCLUSIVE = sa.text("SELECT pg_advisory_xact_lock(:space, :key)")
BIND_TIMEOUT_SECONDS = 5.0


def _lock(kind: str) -> dict[str, int]:
    crc = zlib.crc32(kind.encode())
    return {"space": LOCK_SPACE, "key": crc - 2**32 if crc >= 2**31 else crc}  # a signed int4


class KindBindings:
    """The domain exchange's bindings of the service's webhook-only queues (see the module)."""

    def __init__(
        self, broker: RabbitBroker | None, queues: Mapping[str, RabbitQueue], *, enabled: bool
    ) -> None:
        self.broker = broker
        self.queues = dict(queues)  # kind (routing key) -> its queue
        self.enabled = enabled and broker is not None

    @classmethod
    def always_bound(cls) -> KindBindings:
        """Bindings left as they are declared (every kind bound): no broker to change them."""
        return cls(None, {}, enabled=False)

    async def hold(self, conn: AsyncConnection, kinds: Iterable[str]) -> None:
        """In a registration's transaction, before it writes the endpoint: the webhook-only
        ``kinds`` among ``kinds`` are bound, and stay bound until the transaction ends (then
        the endpoint keeps them bound). :class:`BrokerUnavailable` if the broker cannot bind:
        nothing is registered then."""
        wanted = sorted(set(kinds) & self.queues.keys())
        if not self.enabled or not wanted:
            return
        for kind in wanted:
            await conn.execute(_SHARED, _lock(kind))
        try:
            async with asyncio.timeout(BIND_TIMEOUT_SECONDS):  # a reconnecting channel waits
                for kind in wanted:
                    await self._bind(kind)
        except (AMQPError, ChannelInvalidStateError, OSError, TimeoutError) as exc:
            raise BrokerUnavailable(
                "Webhooks cannot be registered right now (the message broker is unreachable)."
            ) from exc

    async def reconcile(self, db: Database) -> dict[str, bool]:
        """Bind each webhook-only kind an endpoint subscribes to and unbind the others;
        returns kind -> bound."""
        if not self.enabled:
            return dict.fromkeys(self.queues, True)
        bound = {}
        for kind in sorted(self.queues):
            async with UnitOfWork(db) as uow:
                await uow.conn.execute(_EXCLUSIVE, _lock(kind))
                bound[kind] = await _subscribed(uow.conn, kind)
                if bound[kind]:
                    await self._bind(kind)
                else:
                    await self._unbind(kind)
                await uow.commit()  # releases the lock
        return bound

    async def _bind(self, kind: str) -> None:
        assert self.broker is not None  # enabled
        queue = await self.broker.declare_queue(self.queues[kind])
        await queue.bind(DOMAIN_EXCHANGE.name, routing_key=kind, robust=False)

    async def _unbind(self, kind: str) -> None:
        assert self.broker is not None  # enabled
        queue = await self.broker.declare_queue(self.queues[kind])
        await queue.unbind(DOMAIN_EXCHANGE.name, routing_key=kind, timeout=BIND_TIMEOUT_SECONDS)


async def _subscribed(conn: AsyncConnection, kind: str) -> bool:
    k = webhook_endpoint_kinds
    return bool(await conn.scalar(sa.select(sa.exists().where(k.c.kind == kind))))
