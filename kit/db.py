"""A service's own database: its engines and connections, created if missing, migrated with
Alembic. The unit of work that runs a request or a message on it is ``kit.uow``'s."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from kit.handoff import Handoff
from kit.settings import ServiceSettings

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
        # PostgreSQL: the pool's connections are handed out first come, first served (connect).
        self._turns = asyncio.Semaphore(settings.database_pool_size) if self.is_postgres else None

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
                    "pool_timeout": POOL_TIMEOUT_SECONDS,
                    "pool_pre_ping": False,
                    "pool_recycle": 1800,
                    "connect_args": {
                        "server_settings": {"application_name": self.settings.service_name}
                    },
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
                self.url,
                pool_size=2,
                max_overflow=0,
                pool_recycle=1800,  # two rounds overlap
                connect_args={
                    "server_settings": {"application_name": f"{self.settings.service_name}-relay"}
                },
            )
        return self._relay_engine

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection, closed (returned to the pool) on exit.

        On PostgreSQL callers get their turn in the order they asked (a FIFO semaphore as large
        as the pool, taken before the pool's own checkout). The pool alone is not fair: a
        connection put back wakes the longest waiter, but a caller arriving before that waiter
        runs takes the connection first, and the waiter queues again at the back (asyncio's
        ``Queue.get``). In a flash sale, with every request wanting one of six connections, some
        holds waited for seconds while later ones went through (docs/architecture.md,
        "Connections handed out in turn").
        """
        if self._turns is None:
            async with self.engine.connect() as conn:
                yield conn
            return
        if not self._turns.locked():
            await self._turns.acquire()  # one is free and nobody waits: no timer needed
        else:
            try:
                async with asyncio.timeout(POOL_TIMEOUT_SECONDS):
                    await self._turns.acquire()
            except TimeoutError as exc:  # what the pool itself raises when it has none to give
                raise sa.exc.TimeoutError(
                    f"no pooled connection within {POOL_TIMEOUT_SECONDS} s"
                ) from exc
        try:
            conn = await self.engine.connect()
            try:
                yield conn
            finally:
                await conn.close()  # (as a unit of work did: no shielding task per request)
        finally:
            self._turns.release()

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection outside any transaction (autocommit: no BEGIN/ROLLBACK round trips), for
        reads and for a single statement that is its own transaction."""
        async with self.connect() as conn:
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
        async with self.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
        if self._relay_engine is not None:
            await self._relay_engine.dispose()
            self._relay_engine = None


# A caller waits this long for a pooled connection (PostgreSQL), then gets sqlalchemy's TimeoutError.
POOL_TIMEOUT_SECONDS = 30

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
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        dbname=url.database,
        autocommit=True,
    ) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (settings.database_name,)
        ).fetchone()
        if exists:
            return
        try:
            conn.execute(
                sql.SQL("CREATE DATABASE {}").format(sql.Identifier(settings.database_name))
            )
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
