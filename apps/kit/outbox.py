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
  publish happens in that context, so consumers' spans join the request's trace.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from opentelemetry import context as otel_context
from opentelemetry import propagate

from apps.kit import metrics
from apps.kit.tables import add_kit_tables

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from apps.kit.db import Database
    from contracts.envelope import Envelope

log = logging.getLogger(__name__)

OUTBOX = add_kit_tables(sa.MetaData())["outbox"]
NOTIFY_CHANNEL = "outbox"

# Publishes one row: (routing_key, payload, headers, envelope fields) -> awaitable confirm.
PublishFn = Callable[[str, dict[str, Any], dict[str, Any]], Any]


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
    """Publishes committed outbox rows in batches with pipelined confirms."""

    def __init__(
        self,
        db: Database,
        publish: PublishFn,
        *,
        batch_size: int = 500,
        poll_seconds: float = 1.0,
        max_backoff_seconds: float = 5.0,
    ) -> None:
        self.db = db
        self.publish = publish
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.max_backoff = max_backoff_seconds
        self.published_total = 0
        self.failed_total = 0
        self._stopping = asyncio.Event()

    async def relay_once(self) -> int:
        """Publish one batch. Returns how many rows were published (and deleted)."""
        async with self.db.engine.connect() as conn, conn.begin():
            rows = (
                await conn.execute(
                    sa.select(OUTBOX.c.id, OUTBOX.c.routing_key, OUTBOX.c.payload, OUTBOX.c.headers)
                    .order_by(OUTBOX.c.created_at)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            results = await asyncio.gather(
                *(self._publish_row(r) for r in rows), return_exceptions=True
            )
            sent = [r.id for r, res in zip(rows, results, strict=True) if res is None]
            failed = [r.id for r, res in zip(rows, results, strict=True) if res is not None]
            if sent:
                await conn.execute(OUTBOX.delete().where(OUTBOX.c.id.in_(sent)))
            if failed:
                await conn.execute(
                    OUTBOX.update().where(OUTBOX.c.id.in_(failed))
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

    async def _publish_row(self, row: Any) -> None:
        token = otel_context.attach(propagate.extract(row.headers or {}))
        try:
            await self.publish(row.routing_key, row.payload, row.headers or {})
        finally:
            otel_context.detach(token)

    async def backlog(self) -> tuple[int, float]:
        """(rows waiting, age in seconds of the oldest) — for metrics and readiness."""
        async with self.db.engine.connect() as conn:
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
        backoff = 0.1
        next_gauge = 0.0
        try:
            while not self._stopping.is_set():
                try:
                    if time.monotonic() >= next_gauge:
                        await self._update_gauges()
                        next_gauge = time.monotonic() + 5
                    n = await self.relay_once()
                    backoff = 0.1
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # broker or database down: keep the rows, retry later
                    if not isinstance(exc, RelayError):
                        log.warning("outbox relay round failed: %r", exc)
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
                    continue
                if n < self.batch_size:
                    await self._wait_for_work()
        finally:
            if listener:
                listener.cancel()

    async def _update_gauges(self) -> None:
        count, age = await self.backlog()
        service = self.db.settings.service_name
        metrics.OUTBOX_BACKLOG.labels(service).set(count)
        metrics.OUTBOX_AGE.labels(service).set(age)

    def stop(self) -> None:
        self._stopping.set()
        self.db.outbox_written.set()

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
