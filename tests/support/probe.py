"""A minimal service built on the kit, used to prove the kit's delivery guarantees.

It consumes ``event_created`` from its own quorum queue ``probe.event_created`` and records one
row in ``effects`` per handled message. The effect itself is NOT idempotent (a plain insert), so
any duplicate processing would show up as two rows: only the kit's inbox prevents it.

The message title steers the handler (test-only behaviour):
  "poison"             always fails with a transient-looking error (bounded retries, then DLQ)
  "crash-after-commit" commits its effect, then kills the process before the ack (once; the
                       marker file PROBE_CRASH_MARKER records that it happened)
  anything else        records the effect
Run as a process: ``python -m tests.support.probe`` (env configures broker and database).
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import sqlalchemy as sa

from kit.consuming import consume_once
from kit.service import Service, ServiceSpec
from kit.tables import service_metadata
from kit.uow import UnitOfWork
from contracts.messages import EventCreated
from contracts.topology import DOMAIN_EXCHANGE, declare_queue, queue_for

QUEUE = queue_for("probe", EventCreated)
metadata = service_metadata()
effects = sa.Table(
    "effects",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.Uuid, nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
)
attempts: dict[str, int] = {}
handlers: dict[int, object] = {}  # service -> its subscriber (for .mock in unit tests)


async def record_effect(msg: EventCreated, uow: UnitOfWork) -> None:
    if msg.title == "poison":
        raise RuntimeError("poison message: this handler always fails")
    await uow.conn.execute(effects.insert().values(message_id=msg.message_id, title=msg.title))


def subscribe(service: Service) -> None:
    @service.broker.subscriber(QUEUE, DOMAIN_EXCHANGE)
    async def on_event_created(msg: EventCreated) -> None:
        """Records one effect per event_created message."""
        attempts[msg.title] = attempts.get(msg.title, 0) + 1
        await consume_once(service.db, QUEUE.name, msg, record_effect)
        marker = os.getenv("PROBE_CRASH_MARKER")
        if msg.title == "crash-after-commit" and marker and not Path(marker).exists():
            Path(marker).write_text("crashed after commit, before ack\n")
            os.kill(os.getpid(), signal.SIGKILL)

    handlers[id(service)] = on_event_created


async def _prepare(service: Service) -> None:
    async with service.db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    await service.broker.connect()
    await declare_queue(service.broker, QUEUE, DOMAIN_EXCHANGE)


SPEC = ServiceSpec(
    name="probe",
    title="Probe",
    description="Kit test consumer",
    migrations=None,
    subscribe=subscribe,
)


def build(**overrides: object) -> Service:
    service = Service(SPEC, **overrides)
    original_start = service.start

    async def start(*, connect_broker: bool = True) -> None:
        await service.db.prepare()
        if connect_broker:
            await _prepare(service)
        await original_start(connect_broker=connect_broker)

    service.start = start  # type: ignore[method-assign]
    return service


async def _main() -> None:
    service = build()
    await service.start()
    print("probe ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_main())
