"""Queues bound to the domain exchange only while the service's own data needs them.

Some queues carry messages a service needs only in some states: notifications passes
``booking_created`` and the like on to webhooks only if an endpoint subscribes to them; events
counts a voucher's uses from booking's messages only if there are vouchers. Left bound for good
(as FastStream declares a subscriber), such a queue makes the service receive, decode, look up
and mark every hold and payment of the platform for nothing. :class:`OptionalBindings` binds each
of these queues only while ``needed(conn, routing_key)`` says so.

**Why no message is missed.** The use case that creates the need (a webhook registration, a new
voucher) calls :meth:`OptionalBindings.hold` in its transaction before it writes: it takes a
shared lock per routing key and binds. A key is unbound only by :meth:`OptionalBindings.reconcile`,
which takes that lock exclusively, finds ``needed`` false and unbinds, one key at a time
(PostgreSQL transaction advisory locks, in the service's own database). So from the commit of
whatever needs a key on, its messages are routed to the queue, whatever replicas run at once.
Binding twice is harmless, and everything else errs towards bound: FastStream binds every
subscriber's queue when the service starts, aio-pika binds again after a reconnect, and a failed
round changes nothing; :func:`keep_reconciled` (at start, then every
``BINDINGS_RECONCILE_SECONDS``) unbinds what nobody needs. If the broker cannot bind, ``hold``
raises :class:`BrokerUnavailable` (503) and the use case writes nothing.

On SQLite (the embedded mode: one process) every queue stays bound: the plain path.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import sqlalchemy as sa
from aiormq.exceptions import AMQPError, ChannelInvalidStateError

from contracts.topology import DOMAIN_EXCHANGE
from kit.errors import DomainError
from kit.uow import UnitOfWork

if TYPE_CHECKING:
    from faststream.rabbit import RabbitBroker, RabbitQueue
    from sqlalchemy.ext.asyncio import AsyncConnection

    from kit.db import Database

log = logging.getLogger(__name__)

# The first key of the bindings' advisory locks (the second is the routing key's CRC-32).
LOCK_SPACE = 0x5EB0
_SHARED = sa.text("SELECT pg_advisory_xact_lock_shared(:space, :key)")
_EXCLUSIVE = sa.text("SELECT pg_advisory_xact_lock(:space, :key)")
BIND_TIMEOUT_SECONDS = 5.0

Needed = Callable[["AsyncConnection", str], Awaitable[bool]]


class BrokerUnavailable(DomainError):
    """The broker could not route what the change needs to the service: nothing was written,
    the caller may try again."""

    status, code = 503, "broker-unavailable"
    headers = {"Retry-After": "1"}


def _lock(routing_key: str) -> dict[str, int]:
    crc = zlib.crc32(routing_key.encode())
    return {"space": LOCK_SPACE, "key": crc - 2**32 if crc >= 2**31 else crc}  # a signed int4


class OptionalBindings:
    """The domain exchange's bindings of some of a service's queues (see the module)."""

    def __init__(
        self,
        broker: RabbitBroker | None,
        queues: Mapping[str, RabbitQueue],
        needed: Needed,
        *,
        enabled: bool,
    ) -> None:
        self.broker = broker
        self.queues = dict(queues)  # routing key -> the queue that consumes it
        self.needed = needed
        self.enabled = enabled and broker is not None

    @classmethod
    def always_bound(cls) -> OptionalBindings:
        """Bindings left as FastStream declares them (all bound): nothing to change."""

        async def always(_conn: AsyncConnection, _key: str) -> bool:
            return True

        return cls(None, {}, always, enabled=False)

    async def hold(self, conn: AsyncConnection, routing_keys: Iterable[str]) -> None:
        """In the transaction of a change that needs ``routing_keys``, before it writes: those
        of them this object manages are bound, and stay bound until the transaction ends (then
        the change keeps them needed). :class:`BrokerUnavailable` if the broker cannot bind."""
        wanted = sorted(set(routing_keys) & self.queues.keys())
        if not self.enabled or not wanted:
            return
        for key in wanted:
            await conn.execute(_SHARED, _lock(key))
        try:
            async with asyncio.timeout(BIND_TIMEOUT_SECONDS):  # a reconnecting channel waits
                for key in wanted:
                    await self._bind(key)
        except (AMQPError, ChannelInvalidStateError, OSError, TimeoutError) as exc:
            raise BrokerUnavailable(
                "This cannot be saved right now: the message broker is unreachable."
            ) from exc

    async def reconcile(self, db: Database) -> dict[str, bool]:
        """Bind each managed routing key that is needed and unbind the others; returns
        routing key -> bound."""
        if not self.enabled:
            return dict.fromkeys(self.queues, True)
        bound = {}
        for key in sorted(self.queues):
            async with UnitOfWork(db) as uow:
                await uow.conn.execute(_EXCLUSIVE, _lock(key))
                bound[key] = await self.needed(uow.conn, key)
                if bound[key]:
                    await self._bind(key)
                else:
                    await self._unbind(key)
                await uow.commit()  # releases the lock
        return bound

    async def _bind(self, key: str) -> None:
        assert self.broker is not None  # enabled
        queue = await self.broker.declare_queue(self.queues[key])
        # robust: aio-pika binds it again after a reconnect (to a broker that lost it, too)
        await queue.bind(DOMAIN_EXCHANGE.name, routing_key=key)

    async def _unbind(self, key: str) -> None:
        assert self.broker is not None  # enabled
        queue = await self.broker.declare_queue(self.queues[key])
        await queue.unbind(DOMAIN_EXCHANGE.name, routing_key=key, timeout=BIND_TIMEOUT_SECONDS)


async def keep_reconciled(bindings: OptionalBindings, db: Database, *, every: float) -> None:
    """Reconcile ``bindings`` now and then every ``every`` seconds, for ever (a background
    worker). A failed round (broker or database down) leaves the bindings as they are."""
    if not bindings.enabled:
        return
    task = asyncio.current_task()
    while True:
        try:
            await bindings.reconcile(db)
        except Exception as exc:  # broker or database down: the next round tries again
            log.warning("queue bindings not reconciled: %r", exc)
        if task is not None and task.cancelling():
            # A cancel that arrived during the round can be swallowed by a library call that
            # finished at the same moment (seen in the tests: the service's stop then waited
            # out its 10 s grace for this task). Honour it here rather than sleep on.
            raise asyncio.CancelledError
        await asyncio.sleep(every)
