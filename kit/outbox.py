"""Transactional outbox: messages are rows written in the same transaction as the state change;
a relay publishes committed rows to RabbitMQ with publisher confirms and deletes them.

Guarantees:

* Nothing is published that did not commit, nothing that committed is lost: a row is deleted
  only after the broker confirmed it.
* No row is skipped under concurrent writers: the relay claims unpublished rows with
  ``FOR UPDATE SKIP LOCKED`` (no "id > last seen" cursor that a slow transaction could jump), so
  several relays (replicas) share the work without publishing a row twice in the normal case.
* At-least-once: a relay killed between the broker's confirm and the DELETE publishes the row
  again later; consumers deduplicate on ``message_id`` (see :mod:`kit.inbox`).
* A broker outage is survived: failed publishes leave their rows for the next round, with
  back-off; the connection itself is restored by the broker client.
* The trace continues: each row stores the W3C context of the request that wrote it, and the
  publish span is its child, so consumers' spans join the request's trace.
* Throughput: a claimed batch is published as concurrent publishes whose confirms are awaited
  together, while the next batch is claimed and sent (``bench/outbox_relay_bench.py``).
* Publish on commit (services, ``handoff=True``): a unit of work that committed outbox rows hands
  them to its own process's relay (:class:`Handoff`), which publishes them at once, without
  reading them back; each row is still deleted only once the broker confirmed it. What that path
  does not publish (a crash, a failed publish, a full hand-off queue) stays in the table, where
  the relay's polling rounds take it once it is ``handoff_grace`` seconds old: rows that young are
  in flight on the hand-off path of this or another replica. Same guarantees, three statements
  fewer per batch (BEGIN, the claiming SELECT, COMMIT), and a message leaves on commit instead of
  two database round trips later. The outbox is still the source of truth.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import orjson
import sqlalchemy as sa
from opentelemetry import context as otel_context
from opentelemetry import propagate
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from kit import metrics
from kit.db import Database
from kit.handoff import Handoff
from kit.tables import add_kit_tables

if TYPE_CHECKING:
    from contracts.envelope import Envelope

log = logging.getLogger(__name__)

OUTBOX = add_kit_tables(sa.MetaData())["outbox"]
NOTIFY_CHANNEL = "outbox"

# Publishes one row: (routing_key, payload, headers) -> awaitable that returns once the broker
# confirmed it and raises otherwise.
PublishFn = Callable[[str, dict[str, Any], dict[str, Any]], Awaitable[Any]]


class OutboxMessage(NamedTuple):
    """One outbox row as the relay hands it to its publisher."""

    routing_key: str
    payload: dict[str, Any]
    headers: dict[str, Any]  # the W3C trace context of the transaction that wrote the row


class BatchPublisher(Protocol):
    """A publish function that also sends whole batches (``kit.publishing.outbox_publish``)."""

    def __call__(
        self, routing_key: str, payload: dict[str, Any], headers: dict[str, Any]
    ) -> Awaitable[Any]: ...

    async def send_many(
        self, messages: Sequence[OutboxMessage]
    ) -> Awaitable[list[BaseException | None]]:
        """Send ``messages`` in order and return what waits for their confirms: for each
        message, None once the broker confirmed it, else the failure."""
        ...


def rows_of(db: Database, messages: Sequence[Envelope]) -> list[dict[str, Any]]:
    """The outbox rows for ``messages``, stamped with the current trace context: the one mapping
    from a message to its row, whoever writes it (``kit.uow.UnitOfWork.publish``)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)  # the trace of the request/message that wrote the rows
    rows = []
    for m in messages:
        if m.producer == "unknown":
            m = m.model_copy(update={"producer": db.settings.service_name})
        rows.append(
            {
                "id": m.message_id,
                "routing_key": m.routing_key,
                "message_type": m.message_type,  # type: ignore[attr-defined]
                "payload": m.model_dump(mode="json"),
                "headers": dict(carrier),
            }
        )
    return rows


# --- statements that write a row themselves ---------------------------------------------------
# A hot path may write its state change and its message in one statement (a data-modifying CTE,
# a function call). Those statements are built here, from the table, so the outbox's columns
# are spelled out in this module only: the row of :func:`rows_of` becomes the statement's
# parameters with :func:`statement_params`, the SQL comes from :func:`values_sql`,
# :func:`insert_sql` or :func:`insert_cte` (PostgreSQL; elsewhere :func:`insert_rows`).

# What a message's row fills in, in table order (the other columns have defaults).
_ROW_COLUMNS = tuple(c for c in OUTBOX.c if c.server_default is None)
_JSON_COLUMNS = frozenset(c.name for c in _ROW_COLUMNS if isinstance(c.type, sa.JSON))
_PREFIX = "outbox_"


def statement_params(row: dict[str, Any], prefix: str = _PREFIX) -> dict[str, Any]:
    """``row`` as the parameters of a statement built below: JSON documents as text, cast to
    ``jsonb`` by the statement (orjson encodes them for less CPU than the driver would)."""
    return {
        f"{prefix}{name}": orjson.dumps(row[name]).decode() if name in _JSON_COLUMNS else row[name]
        for name in (c.name for c in _ROW_COLUMNS)
    }


def values_sql(prefix: str = _PREFIX) -> str:
    """The row's values as typed parameters, in column order (``id, routing_key, ...``): the
    arguments of a function that inserts the row, or the list of a ``SELECT``."""
    pg = postgresql.dialect()
    return ", ".join(
        f"CAST(:{prefix}{c.name} AS {c.type.compile(dialect=pg)})" for c in _ROW_COLUMNS
    )


def insert_sql(source: str = "", prefix: str = _PREFIX) -> str:
    """``INSERT INTO outbox (...) SELECT <the row's values> <source>``, as a data-modifying CTE
    of a textual statement: with ``source`` ``FROM upd`` the row is written only if ``upd`` has
    a row. ``created_at`` is when the statement wrote it (see :data:`_INSERT`)."""
    names = ", ".join(c.name for c in _ROW_COLUMNS)
    return (
        f"INSERT INTO {OUTBOX.name} ({names}, {OUTBOX.c.created_at.name}) "
        f"SELECT {values_sql(prefix)}, clock_timestamp() {source}"
    ).rstrip()


def insert_cte(name: str, prefix: str = _PREFIX) -> sa.CTE:
    """The row's insert as a CTE ``name`` of a Core statement, ``RETURNING id``."""
    values: dict[str, Any] = {
        c.name: sa.cast(sa.bindparam(f"{prefix}{c.name}", type_=sa.Text), c.type)
        if c.name in _JSON_COLUMNS
        else sa.bindparam(f"{prefix}{c.name}", type_=c.type)
        for c in _ROW_COLUMNS
    }
    values[OUTBOX.c.created_at.name] = sa.func.clock_timestamp()
    return OUTBOX.insert().values(values).returning(OUTBOX.c.id).cte(name)


def needs_notify(db: Database) -> bool:
    """Whether a transaction that wrote outbox rows must NOTIFY the relays of other processes.

    A process that relays itself is woken in-process (or hands its rows over); NOTIFY would
    serialise every committing transaction on PostgreSQL's notify queue lock."""
    return db.is_postgres and not db.settings.outbox_relay and db.handoff is None


# created_at is when the row was written, not when its transaction began (``now()``): the
# relay's polling rounds leave rows younger than the hand-off grace to the hand-off path.
_INSERT = OUTBOX.insert().values(created_at=sa.func.clock_timestamp())
_NOTIFY = sa.text(f"NOTIFY {NOTIFY_CHANNEL}")


async def insert_rows(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (:func:`rows_of`) inside the caller's open transaction."""
    await conn.execute(_INSERT if conn.dialect.name == "postgresql" else OUTBOX.insert(), rows)


async def write(
    conn: AsyncConnection, db: Database, messages: Sequence[Envelope]
) -> list[dict[str, Any]]:
    """Insert ``messages`` into the outbox inside the caller's open transaction and wake the
    relays; returns the rows (for :meth:`Handoff.put` once the transaction committed)."""
    rows = rows_of(db, messages)
    await insert_rows(conn, rows)
    await notify_if_needed(conn, db)
    return rows


async def notify_if_needed(conn: AsyncConnection, db: Database) -> None:
    """No relay in this process: wake the relays of other processes (delivered to LISTENers
    when the transaction commits, at once in autocommit)."""
    if needs_notify(db):
        await conn.execute(_NOTIFY)


class OutboxRelay:
    """Publishes committed outbox rows in batches with pipelined confirms.

    ``publish`` publishes one row; if it also has ``send_many`` (a :class:`BatchPublisher`, e.g.
    ``kit.publishing.outbox_publish``) the relay hands it each claimed batch whole.

    :meth:`run` keeps up to ``pipeline_depth`` rounds going on PostgreSQL while there is a
    backlog (a round took a full batch): while one batch waits for its confirms and is deleted,
    the next is claimed and sent; a quiet relay runs one round per wake-up. Claiming and sending
    are one at a time and in row order, so batches reach the broker in the order they were
    claimed, as with a single round. (SQLite has no ``SKIP LOCKED``: one round there.)
    """

    def __init__(
        self,
        db: Database,
        publish: PublishFn | BatchPublisher,
        *,
        batch_size: int = 500,
        poll_seconds: float = 1.0,
        max_backoff_seconds: float = 5.0,
        pipeline_depth: int = 2,
        handoff: bool = False,
        handoff_grace_seconds: float = 5.0,
        handoff_in_flight: int = 4,
    ) -> None:
        self.db = db
        self.publish = publish
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.max_backoff = max_backoff_seconds
        self.pipeline_depth = pipeline_depth
        self.published_total = 0
        self.failed_total = 0
        self._stopping = asyncio.Event()
        self._sending = asyncio.Lock()  # one round at a time claims and sends
        self._paused_until = 0.0  # a failed round makes every round back off
        self._backlog_seen = asyncio.Event()  # the last round took a full batch: lanes join in
        # Publish on commit (PostgreSQL): this process's units of work hand their committed rows
        # to the relay while it runs; its polling rounds then take only rows older than the grace.
        self.handoff = handoff and db.is_postgres
        self._in_flight = asyncio.Semaphore(handoff_in_flight)  # hand-off batches awaiting confirms
        self._confirmed: list[Any] = []  # hand-off rows confirmed, waiting for their DELETE
        self._confirmed_ready = asyncio.Event()
        self._notified = asyncio.Event()  # a NOTIFY: rows from a process without a relay
        self._handoff_done = False
        # Claim the oldest unclaimed rows; other relays skip them until this transaction ends.
        self._claim = (
            sa.select(
                OUTBOX.c.id,
                OUTBOX.c.routing_key,
                sa.cast(OUTBOX.c.payload, sa.Text).label("payload"),
                sa.cast(OUTBOX.c.headers, sa.Text).label("headers"),
            )
            .order_by(OUTBOX.c.created_at)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
        # ... of those, the rows the hand-off path is done with or never had (see the module doc)
        self._claim_settled = self._claim.where(
            OUTBOX.c.created_at
            < sa.func.clock_timestamp()
            - sa.literal(timedelta(seconds=handoff_grace_seconds), sa.Interval())
        )

    async def relay_once(self, *, fresh: bool = False) -> int:
        """Publish one batch. Returns how many rows were published (and deleted).

        While the relay runs with the hand-off on, rows younger than the grace are left to it
        unless ``fresh`` (a NOTIFY told of rows written by a process that hands off nothing)."""
        handing_off = self.db.handoff is not None  # this relay runs with the hand-off on
        claim = self._claim_settled if handing_off and not fresh else self._claim
        async with self.db.relay_engine.connect() as conn:
            if not self.db.is_postgres:
                # SQLite has one write lock per file and one relay per file (the embedded mode):
                # the claim needs no lock, and holding the file's lock while publishing deadlocks
                # two services whose in-process consumers write to each other (booking's relay
                # waits on payments' file while payments' relay waits on booking's).
                await conn.execution_options(isolation_level="AUTOCOMMIT")
            async with conn.begin():
                async with self._sending:
                    rows = (await conn.execute(claim)).all()
                    if not rows:
                        return 0
                    confirms = await self._send(
                        [
                            # JSON as text, decoded here by orjson: cheaper than the driver's json.loads
                            OutboxMessage(
                                r.routing_key,
                                orjson.loads(r.payload),
                                orjson.loads(r.headers) or {},
                            )
                            for r in rows
                        ]
                    )
                # Sent: another round may claim and send the next batch while these are confirmed.
                results = await confirms
                sent = [r.id for r, res in zip(rows, results, strict=True) if res is None]
                failed = [r.id for r, res in zip(rows, results, strict=True) if res is not None]
                if sent:
                    await conn.execute(OUTBOX.delete().where(self._id_in(sent)))
                if failed:
                    await conn.execute(
                        OUTBOX.update()
                        .where(self._id_in(failed))
                        .values(attempts=OUTBOX.c.attempts + 1)
                    )
                    first_error = next(r for r in results if r is not None)
                    log.warning(
                        "outbox: %d of %d publishes failed: %r", len(failed), len(rows), first_error
                    )
        if sent:
            metrics.OUTBOX_PUBLISHED.labels(self.db.settings.service_name).inc(len(sent))
        self.published_total += len(sent)
        self.failed_total += len(failed)
        if failed:
            raise RelayError(f"{len(failed)} publishes failed")
        return len(sent)

    def _id_in(self, ids: list[Any]) -> sa.ColumnElement[bool]:
        if self.db.is_postgres:  # one array parameter, not one parameter per row
            return OUTBOX.c.id == sa.any_(sa.bindparam("ids", ids, type_=ARRAY(sa.Uuid)))
        return OUTBOX.c.id.in_(ids)

    async def _send(self, messages: list[OutboxMessage]) -> Awaitable[list[BaseException | None]]:
        """Send a claimed batch; returns what waits for the outcome of each row's publish."""
        send_many = getattr(self.publish, "send_many", None)
        if send_many is not None:
            return await send_many(messages)
        results = await asyncio.gather(
            *(self._publish_row(m) for m in messages), return_exceptions=True
        )
        outcome: asyncio.Future[list[BaseException | None]] = asyncio.Future()
        outcome.set_result(list(results))
        return outcome

    async def _publish_row(self, m: OutboxMessage) -> None:
        token = otel_context.attach(propagate.extract(m.headers))
        try:
            await self.publish(m.routing_key, m.payload, m.headers)
        finally:
            otel_context.detach(token)

    async def backlog(self) -> tuple[int, float]:
        """(rows waiting, age in seconds of the oldest) — for metrics and readiness."""
        async with self.db.relay_engine.connect() as conn:
            count, oldest = (
                await conn.execute(sa.select(sa.func.count(), sa.func.min(OUTBOX.c.created_at)))
            ).one()
        age = 0.0
        if oldest is not None:
            age = max(0.0, time.time() - oldest.timestamp())
        return int(count), age

    async def run(self) -> None:
        """Relay until stopped: wake on a local commit, a NOTIFY from another process, or a poll;
        with the hand-off on, publish what this process's units of work hand over as they commit."""
        listener = asyncio.create_task(self._listen()) if self.db.is_postgres else None
        depth = self.pipeline_depth if self.db.is_postgres else 1
        handoff = self.db.handoff = Handoff() if self.handoff else None
        self._handoff_done = False
        try:
            async with asyncio.TaskGroup() as rounds:
                for i in range(depth):
                    rounds.create_task(self._rounds(primary=i == 0))
                if handoff is not None:
                    rounds.create_task(self._handoff_lane(handoff))
                    rounds.create_task(self._delete_confirmed())
        finally:
            if handoff is not None:
                self.db.handoff = None
                handoff.clear()  # still in the table: the next relay's polling rounds take them
            if listener:
                listener.cancel()

    async def _rounds(self, *, primary: bool) -> None:
        """One lane of polling rounds. The primary lane waits for work (a commit, a NOTIFY, the
        poll); the others only join in while there is a backlog (the last round took a full
        batch). Waking every lane on every commit cost a quiet relay an empty round (BEGIN,
        SELECT that skips the rows the other lane holds, COMMIT) for each batch it sent."""
        backoff = 0.1
        next_gauge = 0.0
        fresh = False
        while not self._stopping.is_set():
            if not primary:
                await self._backlog_seen.wait()
                if self._stopping.is_set():
                    return
            if (pause := self._paused_until - time.monotonic()) > 0:
                await self._sleep(pause)
                continue
            try:
                if primary and time.monotonic() >= next_gauge:
                    await self._update_gauges()
                    next_gauge = time.monotonic() + 5
                n = await self.relay_once(fresh=fresh)
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker or database down: keep the rows, retry later
                if not isinstance(exc, RelayError):
                    log.warning("outbox relay round failed: %r", exc)
                self._paused_until = max(self._paused_until, time.monotonic() + backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            if n >= self.batch_size:
                self._backlog_seen.set()
                continue
            self._backlog_seen.clear()
            if primary:
                fresh = await self._wait_for_work()

    async def _handoff_lane(self, handoff: Handoff) -> None:
        """Publish the rows units of work hand over as they commit: in commit order, up to
        ``handoff_in_flight`` batches awaiting their confirms at once."""
        settling: set[asyncio.Task[None]] = set()
        try:
            while not self._stopping.is_set():
                await handoff.ready.wait()
                await self._in_flight.acquire()
                batch = handoff.take(self.batch_size)
                if not batch or self._stopping.is_set() or time.monotonic() < self._paused_until:
                    # (broker trouble: what was handed over stays for the polling rounds)
                    self._in_flight.release()
                    continue
                try:
                    confirms = await self._send(
                        [OutboxMessage(r["routing_key"], r["payload"], r["headers"]) for r in batch]
                    )
                except Exception as exc:
                    self._in_flight.release()
                    log.warning("outbox hand-off: %d publishes not sent: %r", len(batch), exc)
                    continue
                task = asyncio.create_task(self._settle_handoff(batch, confirms))
                settling.add(task)
                task.add_done_callback(settling.discard)
        finally:
            if settling:
                await asyncio.gather(*settling, return_exceptions=True)
            self._handoff_done = True
            self._confirmed_ready.set()

    async def _settle_handoff(
        self, batch: list[dict[str, Any]], confirms: Awaitable[list[BaseException | None]]
    ) -> None:
        try:
            results = await confirms
        finally:
            self._in_flight.release()
        sent = [r["id"] for r, res in zip(batch, results, strict=True) if res is None]
        failed = len(batch) - len(sent)
        self.published_total += len(sent)
        if sent:
            self._confirmed.extend(sent)
            self._confirmed_ready.set()
        if failed:
            self.failed_total += failed
            first_error = next(r for r in results if r is not None)
            log.warning(
                "outbox hand-off: %d of %d publishes failed (left for the polling rounds): %r",
                failed,
                len(batch),
                first_error,
            )
            if not sent:  # the broker is away: hand nothing over for a moment
                self._paused_until = max(self._paused_until, time.monotonic() + 1.0)

    async def _delete_confirmed(self) -> None:
        """DELETE the hand-off rows the broker confirmed: whatever was confirmed while the last
        DELETE ran goes in the next one (autocommit, one statement)."""
        backoff = 0.1
        while True:
            if not self._confirmed:
                if self._handoff_done:
                    return
                await self._confirmed_ready.wait()
                self._confirmed_ready.clear()
                continue
            ids, self._confirmed = self._confirmed, []
            try:
                async with self.db.relay_engine.connect() as conn:
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                    await conn.execute(OUTBOX.delete().where(self._id_in(ids)))
            except Exception as exc:  # the database is away: retry (a relay that dies first
                # leaves them to be published again: at least once, consumers deduplicate)
                log.warning("outbox hand-off: deleting %d published rows failed: %r", len(ids), exc)
                self._confirmed[:0] = ids
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            backoff = 0.1
            metrics.OUTBOX_PUBLISHED.labels(self.db.settings.service_name).inc(len(ids))

    async def _update_gauges(self) -> None:
        count, age = await self.backlog()
        service = self.db.settings.service_name
        metrics.OUTBOX_BACKLOG.labels(service).set(count)
        metrics.OUTBOX_AGE.labels(service).set(age)

    def stop(self) -> None:
        self._stopping.set()
        self.db.outbox_written.set()
        self._notified.set()
        self._backlog_seen.set()
        if self.db.handoff is not None:
            self.db.handoff.ready.set()

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass

    async def _wait_for_work(self) -> bool:
        """Wait for a commit (hand-off off), a NOTIFY or the poll; True after a NOTIFY."""
        ev = self._notified if self.handoff else self.db.outbox_written
        try:
            await asyncio.wait_for(ev.wait(), self.poll_seconds)
        except TimeoutError:
            pass
        notified = ev.is_set()
        ev.clear()
        return notified and self.handoff

    def _wake_notified(self) -> None:
        self._notified.set()
        self.db.outbox_written.set()

    async def _listen(self) -> None:
        """LISTEN for commits from other processes of this service (e.g. the HTTP workers)."""
        import asyncpg

        url = self.db.url
        while not self._stopping.is_set():
            conn = None
            try:
                conn = await asyncpg.connect(
                    host=url.host,
                    port=url.port or 5432,
                    user=url.username,
                    password=url.password,
                    database=url.database,
                )
                await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake_notified())
                while not self._stopping.is_set() and not conn.is_closed():
                    await asyncio.sleep(1)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("outbox listener reconnecting: %r", exc)
                await asyncio.sleep(1)
            finally:
                if conn is not None and not conn.is_closed():
                    await conn.close()


class RelayError(Exception):
    pass
