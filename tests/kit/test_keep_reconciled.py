"""The bindings' background worker stops when it is cancelled, even when the cancel lands in a
round whose library call swallows it (the service's stop would otherwise wait out its grace)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kit.bindings import keep_reconciled


class SwallowingBindings:
    """Bindings whose reconcile finishes normally although it was cancelled mid-round, as a
    library call that completes at the moment of the cancel does."""

    enabled = True

    def __init__(self) -> None:
        self.rounds = 0
        self.in_round = asyncio.Event()

    async def reconcile(self, _db: Any) -> dict[str, bool]:
        self.rounds += 1
        self.in_round.set()
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            pass  # swallowed: the round goes on and returns
        return {}


async def test_a_cancel_swallowed_during_a_round_still_stops_the_worker():
    bindings = SwallowingBindings()
    worker = asyncio.create_task(keep_reconciled(bindings, None, every=60))  # type: ignore[arg-type]
    await bindings.in_round.wait()
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(worker, 2)  # not the 60 s sleep of the next round
    assert bindings.rounds == 1


async def test_a_cancel_between_rounds_stops_the_worker():
    bindings = SwallowingBindings()
    worker = asyncio.create_task(keep_reconciled(bindings, None, every=60))  # type: ignore[arg-type]
    await bindings.in_round.wait()
    await asyncio.sleep(0.3)  # the round is over: the worker sleeps
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(worker, 2)
    assert bindings.rounds == 1
