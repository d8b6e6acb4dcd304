"""A one-shot outbox relay over the probe service's database that dies at the worst moment.

``python -m tests.reliability.relay_crash N crash`` claims a batch of N outbox rows with the kit's
:class:`OutboxRelay` and publishes them through the kit's real publish path (persistent,
confirmed, mandatory). Once the broker has confirmed all N, and before the relay's DELETE of
those rows commits, it SIGKILLs its own process: the rows stay in the outbox, the messages are
already in the queue. Prints ``confirmed N`` just before dying; exits 1 if it ever gets further.

``python -m tests.reliability.relay_crash N handoff-crash TAG`` is the same death on the
publish-on-commit path: a relay running with the hand-off on, in a process that commits N
messages (titled ``relay-crash-TAG-<i>``) through its unit of work, which hands them over; the
process dies once the broker confirmed all N, before their DELETE.

``python -m tests.reliability.relay_crash N`` is the fresh relay that runs afterwards: the same
kit relay, unharmed, publishing whatever the outbox holds until it is empty.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from kit.db import Database
from kit.uow import UnitOfWork
from kit.broker import make_broker
from kit.publishing import declare_publishers, outbox_publish
from kit.outbox import OutboxRelay
from kit.settings import ServiceSettings
from contracts.messages import EventCreated


def killed_after(expected: int, publish: Any) -> Any:
    confirmed = 0

    async def publish_then_die(
        routing_key: str, payload: dict[str, Any], headers: dict[str, Any]
    ) -> None:
        nonlocal confirmed
        await publish(routing_key, payload, headers)  # returns once the broker confirmed it
        confirmed += 1
        if confirmed == expected:  # every row of the batch is confirmed; the DELETE is next
            print(f"confirmed {confirmed}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    return publish_then_die


async def main(expected: int, mode: str = "", tag: str = "") -> None:
    settings = ServiceSettings(service_name="probe", outbox_relay=False)
    db = Database(settings, migrations=None)
    broker = make_broker(settings)
    publishers = declare_publishers(broker, [EventCreated])
    await broker.start()
    publish = outbox_publish(publishers)
    if mode == "handoff-crash":
        from tests.support.messages import event_created

        relay = OutboxRelay(
            db,
            killed_after(expected, publish),
            handoff=True,
            poll_seconds=3600,
            handoff_grace_seconds=3600,
        )
        running = asyncio.create_task(relay.run())
        while db.handoff is None:
            await asyncio.sleep(0.01)
        async with UnitOfWork(db) as uow:
            uow.publish(*(event_created(title=f"relay-crash-{tag}-{i}") for i in range(expected)))
            await uow.commit()
        await asyncio.wait([running], timeout=30)
        print("relay lived on: it should have been killed", flush=True)
        sys.exit(1)
    if mode == "crash":
        relay = OutboxRelay(db, killed_after(expected, publish), batch_size=expected)
        published = await relay.relay_once()
        print(f"relay finished normally ({published} rows): it should have been killed", flush=True)
        sys.exit(1)
    relay = OutboxRelay(db, publish, batch_size=expected)
    total = 0
    while published := await relay.relay_once():
        total += published
    print(f"republished {total}", flush=True)
    await broker.stop()
    await db.dispose()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), *sys.argv[2:]))
