"""The unit of work: one request's or one message's transaction on its service's database.

Core-level (an ``AsyncConnection`` in a transaction): repositories run statements on
``uow.conn``; the messages the use case publishes go to the outbox in the same transaction, so
a state change and its messages land together or not at all, and once committed they are handed
to this process's relay, which publishes them at once (``kit.outbox``).
"""

from __future__ import annotations

import contextlib
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy.ext.asyncio import AsyncConnection

from kit import metrics, outbox
from kit.db import Database

if TYPE_CHECKING:
    from contracts.envelope import Envelope


class UnitOfWork:
    """One transaction: state changes, outbox rows and inbox marks commit together.

    ``single_statement=True`` is for a use case whose whole effect, its outbox rows included, is
    one statement (``publish(..., inline=True)``): on PostgreSQL it runs in autocommit mode, so
    the statement is its own transaction and no BEGIN/COMMIT round trips hold its row locks
    longer (a hot row's throughput is bounded by how long each writer holds it). Publishing
    messages for the unit of work to write is refused then. On SQLite it is an ordinary
    transaction.
    """

    def __init__(self, db: Database, *, single_statement: bool = False) -> None:
        self.db = db
        self.conn: AsyncConnection
        self._staged: list[dict[str, Any]] = []  # outbox rows this unit of work writes at commit
        self._inline: list[dict[str, Any]] = []  # ... the use case's own statement writes
        self._done = False
        self.autocommit = single_statement and db.is_postgres

    async def __aenter__(self) -> Self:
        self._lease = contextlib.AsyncExitStack()
        self.conn = await self._lease.enter_async_context(self.db.connect())
        try:
            if self.autocommit:
                await self.conn.execution_options(isolation_level="AUTOCOMMIT")
            else:
                await self.conn.begin()
        except BaseException:
            await self._lease.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if not self._done:
                await self.rollback()
        finally:
            await self._lease.aclose()

    def publish(self, *messages: Envelope, inline: bool = False) -> list[dict[str, Any]]:
        """Publish ``messages`` if, and only if, this unit of work commits; returns their outbox
        rows (``kit.outbox.rows_of``).

        By default this unit of work writes the rows at commit. ``inline=True``: the use case's
        own statement writes the returned rows (built with ``kit.outbox``'s statement builders),
        so it must have written them when this unit of work commits; a statement that wrote
        nothing is followed by a rollback (leave the unit of work uncommitted, or raise) or by
        :meth:`discard_messages`. Either way the committed rows are handed to the relay.
        """
        if self.autocommit and not inline:
            raise RuntimeError("a single-statement unit of work cannot stage messages")
        rows = outbox.rows_of(self.db, messages)
        (self._inline if inline else self._staged).extend(rows)
        return rows

    def discard_messages(self) -> None:
        """Forget every message published so far: its effect was rolled back (to a savepoint),
        or its own statement wrote nothing."""
        self._staged = []
        self._inline = []

    async def commit(self) -> None:
        if self._staged:
            await outbox.insert_rows(self.conn, self._staged)
        if self._staged or self._inline:  # (inline rows too: other processes' relays are woken)
            await outbox.notify_if_needed(self.conn, self.db)
        if not self.autocommit:
            await self.conn.commit()
        self._done = True
        rows = self._staged + self._inline
        self.discard_messages()
        if rows:
            handoff = self.db.handoff
            if handoff is not None:
                handoff.put(rows)  # published now by this process's relay
            else:
                self.db.outbox_written.set()
            for row in rows:  # booking_confirmed -> bookings confirmed, payment_failed ...
                name, _, outcome = row["routing_key"].partition("_")
                metrics.count(f"{name}s", outcome or "requested")

    async def rollback(self) -> None:
        self.discard_messages()
        if self.conn.in_transaction():
            await self.conn.rollback()
        self._done = True


async def run_in_unit_of_work(db: Database, use_case: Any, /, **kw: Any) -> Any:
    """Run ``use_case(uow, **kw)`` in one unit of work and commit it; returns its result.

    What a command route does after parsing its input (a domain error it raises propagates to
    the kit's problem handler).
    """
    async with UnitOfWork(db) as uow:
        result = await use_case(uow, **kw)
        await uow.commit()
        return result
