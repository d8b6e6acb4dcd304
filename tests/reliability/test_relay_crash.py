"""An outbox relay killed between the broker's confirm and the DELETE of its rows: the rows are
published again by the next relay, and the consumers' inbox turns the duplicates into no-ops."""

from __future__ import annotations

import asyncio
import sys
import uuid

import pytest
import sqlalchemy as sa

from tests.e2e.conftest import ROOT
from tests.support.messages import event_created
from tests.reliability.jepsen import Counts
from tests.support import probe
from tests.support.waiting import eventually
from kit.uow import UnitOfWork

pytestmark = pytest.mark.integration


async def run_relay(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.reliability.relay_crash",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def effects_of(consumer, titles: list[str]) -> dict[str, int]:
    async with consumer.db.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(probe.effects.c.title, sa.func.count())
            .where(probe.effects.c.title.in_(titles))
            .group_by(probe.effects.c.title)
        )
        return dict(rows.all())


@pytest.mark.parametrize("path", ["polling round", "hand-off on commit"])
async def test_relay_killed_after_confirm_before_delete_duplicates_are_absorbed(
    start_service, path
):
    n = 25
    tag = uuid.uuid4().hex[:6]
    messages = [event_created(title=f"relay-crash-{tag}-{i}") for i in range(n)]
    titles = [m.title for m in messages]
    # the consumer (with its inbox) runs here; the relays run in their own processes
    async with start_service(probe.build, outbox_relay=False) as consumer:
        if path == "polling round":
            async with UnitOfWork(consumer.db) as uow:
                uow.publish(*messages)
                await uow.commit()
            code, out = await run_relay(str(n), "crash")
        else:  # the relay's own process commits them, and hands them over
            code, out = await run_relay(str(n), "handoff-crash", tag)
        assert code == -9 and f"confirmed {n}" in out, out
        # the DELETE never committed: every row is still waiting, yet all were delivered
        assert (await consumer.relay.backlog())[0] == n
        await eventually(
            lambda: effects_of(consumer, titles), until=lambda c: len(c) == n, timeout=20
        )

        code, out = await run_relay(str(n))
        assert code == 0 and f"republished {n}" in out, out
        assert (await consumer.relay.backlog())[0] == 0
        # every message arrived twice ...
        await eventually(
            lambda: asyncio.sleep(0, [probe.attempts.get(t, 0) for t in titles]),
            until=lambda seen: all(a == 2 for a in seen),
            timeout=20,
        )
        effects = await effects_of(consumer, titles)

    counts = Counts.of(
        f"relay killed between confirm and delete ({path})",
        sent=titles,
        effects=effects,
        deliveries=sum(probe.attempts[t] for t in titles),
    )
    counts.report()
    # ... and had its effect once
    assert counts.lost == 0 and counts.duplicated == 0, counts
    assert counts.deliveries == 2 * n  # the duplicate publish really happened
