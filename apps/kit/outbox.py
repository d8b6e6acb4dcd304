"""Transactional outbox: messages are rows written in the same transaction as the state change;
a relay publishes committed rows to RabbitMQ with publisher confirms and deletes them.

Guarantees:

* Nothing is published that did not commit, nothing that committed is lost: a row is deleted
  only after the broker confirmed it.
* No row is skipped under concurrent writers: the relay claims unpublished rows with
  ``FOR UPDATE SKIP LOCKED`` (no "id > last seen" cursor that a slow transaction could jump), so
  several relays (replicas) share the work without publishing a row twice in the normal case.
* At-least-once: a relay killed between the broker's confirm and the DELETE publishes the row
  again later; consumers deduplicate on ``message_id`` (see :mod:`apps.kit.inbox`).
* A broker outage is survived: failed publishes leave their rows for the next round, with
  back-off; the connection itself is restored by the broker client.
* The trace continues: each row stores the W3C context of the request that wrote it, and the
  publish span is its child, so consumers' spans join the request's trace.
* Throughput: a claimed batch goes to the broker in one write and its confirms are awaited
  together, while the next batch is claimed and sent (``bench/outbox_relay_bench.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import orjson
import sqlalchemy as sa
from opentelemetry import context as otel_context
from opentelemetry import propagate
from sqlalchemy.dialects.postgresql import ARRAY

from apps.kit import metrics
from apps.kit.tables import add_kit_tables

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from apps.kit.db import Database
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
    """A publish function that also sends whole batches (``apps.kit.messaging.outbox_publish``)."""

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
    """The outbox rows for ``messages``, stamped with the current trace context: what
    :func:`write` inserts, for a statement that writes its own outbox row (a hot path that wants
    its state change and its message in one statement, see ``UnitOfWork.outbox_rows``)."""
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


def needs_notify(db: Database) -> bool:
    """Whether a transaction that wrote outbox rows must NOTIFY the relays of other processes.

    A process that relays itself is woken in-process; NOTIFY would serialise every committing
    transaction on PostgreSQL's notify queue lock."""
    return db.is_postgres and not db.settings.outbox_relay


async def write(conn: AsyncConnection, db: Database, messages: Sequence[Envelope]) -> None:
    """Insert ``messages`` into the outbox inside the caller's open transaction."""
    await conn.execute(OUTBOX.insert(), rows_of(db, messages))
    if needs_notify(db):
        # No relay in this process: wake the relays of other processes (delivered to LISTENers
        # when this transaction commits).
        await conn.execute(sa.text(f"NOTIFY {NOTIFY_CHANNEL}"))


class OutboxRelay:
    """Publishes committed outbox rows in batches with pipelined confirms.

    ``publish`` publishes one row; if it also has ``send_many`` (a :class:`BatchPublisher`, e.g.
    ``apps.kit.messaging.outbox_publish``) the relay hands it each claimed batch whole.

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

    async def relay_once(self) -> int:
        """Publish one batch. Returns how many rows were published (and deleted)."""
        async with self.db.relay_engine.connect() as conn, conn.begin():
            async with self._sending:
                rows = (await conn.execute(self._claim)).all()
                if not rows:
                    return 0
                confirms = await self._send([
                    # JSON as text, decoded here by orjson: cheaper than the driver's json.loads
                    OutboxMessage(
                        r.routing_key, orjson.loads(r.payload), orjson.loads(r.headers) or {}
                    )
                    for r in rows
                ])
            # Sent: another round may claim and send the next batch while these are confirmed.
            results = await confirms
            sent = [r.id for r, res in zip(rows, results, strict=True) if res is None]
            failed = [r.id for r, res in zip(rows, results, strict=True) if res is not None]
            if sent:
                await conn.execute(OUTBOX.delete().where(self._id_in(sent)))
            if failed:
                await conn.execute(
                    OUTBOX.update().where(self._id_in(failed))
                    .values(attempts=OUTBOX.c.attempts + 1)
                )
                first_error = next(r for r in results if r is not None)
                log.warning("outbox: %d of %d publishes failed: %r", len(failed), len(rows), first_error)
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
        """Relay until stopped: wake on a local commit, a NOTIFY from another process, or a poll."""
        listener = asyncio.create_task(self._listen()) if self.db.is_postgres else None
        depth = self.pipeline_depth if self.db.is_postgres else 1
        try:
            async with asyncio.TaskGroup() as rounds:
                for i in range(depth):
                    rounds.create_task(self._rounds(primary=i == 0))
        finally:
            if listener:
                listener.cancel()

    async def _rounds(self, *, primary: bool) -> None:
        """One lane of rounds. The primary lane waits for work (a commit, a NOTIFY, the poll);
        the others only join in while there is a backlog (the last round took a full batch).
        Waking every lane on every commit cost a quiet relay an empty round (BEGIN, SELECT that
        skips the rows the other lane holds, COMMIT) for each batch it sent."""
        backoff = 0.1
        next_gauge = 0.0
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
                n = await self.relay_once()
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
                await self._wait_for_work()

    async def _update_gauges(self) -> None:
        count, age = await self.backlog()
        service = self.db.settings.service_name
        metrics.OUTBOX_BACKLOG.labels(service).set(count)
        metrics.OUTBOX_AGE.labels(service).set(age)

    def stop(self) -> None:
        self._stopping.set()
        self.db.outbox_written.set()
        self._backlog_seen.set()

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass

    async def _wait_for_work(self) -> None:
        ev = self.db.outbox_written
        try:
            await asyncio.wait_for(ev.wait(), self.poll_seconds)
        except TimeoutError:
            pass
        ev.clear()

    async def _listen(self) -> None:
        """LISTEN for commits from other processes of this service (e.g. the HTTP workers)."""
        import asyncpg

        url = self.db.url
        while not self._stopping.is_set():
            conn = None
            try:
                conn = await asyncpg.connect(
                    host=url.host, port=url.port or 5432, user=url.username,
                    password=url.password, database=url.database,
                )
                await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self.db.outbox_written.set())
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
