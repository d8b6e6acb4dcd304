"""A service's own database: created if missing, migrated with Alembic, one unit of work per
request or message.

The unit of work is Core-level (an ``AsyncConnection`` in a transaction): repositories run
statements on ``uow.conn``; messages the use case emits are staged and written to the outbox in
the same transaction at commit, so a state change and its messages land together or not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from kit import metrics
from kit.settings import ServiceSettings

if TYPE_CHECKING:
    from kit.outbox import Handoff
    from contracts.envelope import Envelope

log = logging.getLogger(__name__)


class Database:
    """Engine and lifecycle of one service's database."""

    def __init__(self, settings: ServiceSettings, migrations: Path | None = None) -> None:
        self.settings = settings
        self.migrations = migrations
        self.url = settings.sqlalchemy_url
        self.is_postgres = self.url.get_backend_name() == "postgresql"
        self._engine: AsyncEngine | None = None
        self._relay_engine: AsyncEngine | None = None
        # Set by a unit of work that wrote outbox rows, so the in-process relay wakes at once.
        self.outbox_written = asyncio.Event()
        # While this process's relay publishes on commit, units of work hand it their rows here.
        self.handoff: Handoff | None = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            kw: dict[str, Any] = {}
            if self.is_postgres:
                kw = {
                    "pool_size": self.settings.database_pool_size,
                    # No overflow: under a burst, requests wait for a pooled connection instead of
                    # opening (and closing again) extra ones — connection churn costs far more
                    # CPU than the wait, and a hot row gets slower with more writers anyway.
                    "max_overflow": 0,
                    "pool_timeout": 30,
                    "pool_pre_ping": False,
                    "pool_recycle": 1800,
                    "connect_args": {"server_settings": {"application_name": self.settings.service_name}},
                }
            else:
                kw = {"connect_args": {"timeout": SQLITE_BUSY_SECONDS}}
            self._engine = create_async_engine(self.url, **kw)
            if not self.is_postgres:
                _serialise_sqlite_writers(self._engine)
        return self._engine

    @property
    def relay_engine(self) -> AsyncEngine:
        """The outbox relay's own connections (PostgreSQL; SQLite shares the engine): under a
        burst, requests and consumers queue for the shared pool, and a relay queued behind them
        would let the outbox, and every message's latency, grow with the load."""
        if not self.is_postgres:
            return self.engine
        if self._relay_engine is None:
            self._relay_engine = create_async_engine(
                self.url, pool_size=2, max_overflow=0, pool_recycle=1800,  # two rounds overlap
                connect_args={"server_settings": {
                    "application_name": f"{self.settings.service_name}-relay"}},
            )
        return self._relay_engine

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection outside any transaction (autocommit: no BEGIN/ROLLBACK round trips), for
        reads and for a single statement that is its own transaction."""
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    def insert(self, table: sa.Table) -> Any:
        """A dialect insert (supports ``on_conflict_do_nothing``) for PostgreSQL or SQLite."""
        return (postgresql if self.is_postgres else sqlite).insert(table)

    async def prepare(self) -> None:
        """Create the database if it is missing and apply every migration (idempotent)."""
        await asyncio.to_thread(self._prepare_sync)

    def _prepare_sync(self) -> None:
        if self.is_postgres:
            ensure_database(self.settings)
        elif self.url.database:
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        if self.migrations is not None:
            migrate(self.settings, self.migrations)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
        if self._relay_engine is not None:
            await self._relay_engine.dispose()
            self._relay_engine = None

    def unit_of_work(self, *, single_statement: bool = False) -> UnitOfWork:
        """A unit of work; ``single_statement``: see :class:`UnitOfWork`."""
        return UnitOfWork(self, single_statement=single_statement)


# SQLite (the embedded mode) has one writer at a time: a transaction waits this long for it.
SQLITE_BUSY_SECONDS = 30


def _serialise_sqlite_writers(engine: AsyncEngine) -> None:
    """Every SQLite transaction starts ``BEGIN IMMEDIATE``: it takes the write lock up front and
    waits for it, so a read-then-write use case is serialised (what ``FOR UPDATE`` gives on
    PostgreSQL, where SQLite would instead fail the second writer). WAL lets reads go on."""

    @sa.event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # the driver emits no BEGIN; _begin below does
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
        cur.close()

    @sa.event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":  # Database.read
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def ensure_database(settings: ServiceSettings) -> None:
    """CREATE DATABASE <prefix><service> unless it exists; safe when replicas race."""
    import psycopg
    from psycopg import errors, sql

    url = settings.maintenance_url
    with psycopg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password,
        dbname=url.database, autocommit=True,
    ) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (settings.database_name,)
        ).fetchone()
        if exists:
            return
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(settings.database_name)))
            log.info("created database %s", settings.database_name)
        except (errors.DuplicateDatabase, errors.UniqueViolation):
            pass


def migrate(settings: ServiceSettings, migrations: Path) -> None:
    """Alembic ``upgrade head`` for one service (its env.py serialises concurrent runners)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations))
    sync_url = settings.sqlalchemy_url
    if sync_url.get_backend_name() == "postgresql":
        sync_url = sync_url.set(drivername="postgresql+psycopg")
    else:
        sync_url = sync_url.set(drivername="sqlite")
    cfg.attributes["sqlalchemy_url"] = sync_url
    command.upgrade(cfg, "head")


async def run_in_unit_of_work(db: Database, use_case: Any, /, **kw: Any) -> Any:
    """Run ``use_case(uow, **kw)`` in one unit of work and commit it; returns its result.

    What a command route does after parsing its input (a domain error it raises propagates to
    the kit's problem handler).
    """
    async with db.unit_of_work() as uow:
        result = await use_case(uow, **kw)
        await uow.commit()
        return result


class UnitOfWork:
    """One transaction: state changes, outbox rows and inbox marks commit together.

    ``single_statement=True`` is for a use case whose whole effect, its outbox rows included, is
    one statement (see :meth:`written_inline`): on PostgreSQL it runs in autocommit mode, so the
    statement is its own transaction and no BEGIN/COMMIT round trips hold its row locks longer
    (a hot row's throughput is bounded by how long each writer holds it). Staging messages with
    :meth:`emit` is refused then. On SQLite it is an ordinary transaction.
    """

    def __init__(self, db: Database, *, single_statement: bool = False) -> None:
        self.db = db
        self.conn: AsyncConnection
        self._messages: list[Envelope] = []
        self._inline: list[Envelope] = []
        self._inline_rows: dict[Any, dict[str, Any]] = {}  # by message id, from outbox_rows
        self._done = False
        self.autocommit = single_statement and db.is_postgres

    async def __aenter__(self) -> Self:
        self.conn = await self.db.engine.connect()
        if self.autocommit:
            await self.conn.execution_options(isolation_level="AUTOCOMMIT")
        else:
            await self.conn.begin()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if not self._done:
                await self.rollback()
        finally:
            await self.conn.close()

    def emit(self, *messages: Envelope) -> None:
        """Stage messages to publish if, and only if, this unit of work commits."""
        if self.autocommit:
            raise RuntimeError("a single-statement unit of work cannot stage messages")
        self._messages.extend(messages)

    def outbox_rows(self, *messages: Envelope) -> list[dict[str, Any]]:
        """The outbox rows of ``messages`` for a statement that inserts them itself; call
        :meth:`written_inline` once that statement has written them."""
        from kit import outbox

        rows = outbox.rows_of(self.db, messages)
        self._inline_rows.update((row["id"], row) for row in rows)
        return rows

    def written_inline(self, *messages: Envelope) -> None:
        """``messages`` are in the outbox, written by the use case's own statement: once this
        unit of work commits, hand them to the relay and count them as :meth:`emit` would.
        Each must have its row from :meth:`outbox_rows` (what the relay publishes on commit)."""
        missing = [m.message_id for m in messages if m.message_id not in self._inline_rows]
        if missing:
            raise ValueError(f"written_inline: no outbox_rows() row for messages {missing}")
        self._inline.extend(messages)

    def discard_messages(self) -> None:
        self._messages = []
        self._inline = []
        self._inline_rows = {}

    async def commit(self) -> None:
        from kit import outbox

        rows = await outbox.write(self.conn, self.db, self._messages) if self._messages else []
        if self._inline and not self._messages:  # (write() sent it for both)
            # rows the use case's own statement wrote: other processes' relays are woken too
            await outbox.notify_if_needed(self.conn, self.db)
        if not self.autocommit:
            await self.conn.commit()
        self._done = True
        sent = self._messages + self._inline
        if sent:
            rows += [self._inline_rows[m.message_id] for m in self._inline]
            handoff = self.db.handoff
            if handoff is not None:
                handoff.put(rows)  # published now by this process's relay
            else:
                self.db.outbox_written.set()
            for m in sent:  # booking_confirmed -> bookings confirmed, payment_failed ...
                name, _, outcome = m.routing_key.partition("_")
                metrics.count(f"{name}s", outcome or "requested")
        self._messages = []
        self._inline = []
        self._inline_rows = {}

    async def rollback(self) -> None:
        self._messages = []
        self._inline = []
        self._inline_rows = {}
        if self.conn.in_transaction():
            await self.conn.rollback()
        self._done = True
