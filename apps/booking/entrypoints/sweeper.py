"""The hold-expiry sweeper: a background loop every booking replica runs."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from apps.booking import handlers, waitlist
from apps.booking.deps import BookingDeps
from kit.uow import UnitOfWork

if TYPE_CHECKING:
    from kit.service import Service

log = logging.getLogger(__name__)


async def sweep_once(service: Service) -> int:
    """Expire lapsed holds batch by batch until none is left (their seats go to the waiting
    lists first); returns how many."""
    deps = BookingDeps.of(service)
    batch_size = deps.settings.booking_sweep_batch_size
    total = 0
    while True:
        async with UnitOfWork(deps.db) as uow:
            n = await handlers.expire_overdue_holds(
                uow, repository=deps.repository, batch_size=batch_size
            )
            await uow.commit()
        total += n
        if n:
            deps.availability.forget()  # seats back on sale
        if n < batch_size:
            break
    # the waiting lists' safety net: a queue head that fits in seats free as committed (seats
    # that came back at the very moment it joined) is served now
    async with UnitOfWork(deps.db) as uow:
        if await waitlist.serve_stuck_waitlists(uow, repository=deps.repository, limit=batch_size):
            deps.availability.forget()
        await uow.commit()
    return total


async def hold_expiry_sweeper(service: Service) -> None:
    """Every ``BOOKING_SWEEP_INTERVAL_SECONDS``, expire lapsed holds (0 turns it off). Safe with
    any number of replicas sweeping at once: each skips the rows another has locked."""
    interval = BookingDeps.of(service).settings.booking_sweep_interval_seconds
    if interval <= 0:
        return
    while True:
        try:
            n = await sweep_once(service)
            if n:
                log.info("expired %d lapsed holds", n)
        except asyncio.CancelledError:
            raise
        except Exception:  # database hiccup: try again next round
            log.exception("hold-expiry sweep failed")
        await asyncio.sleep(interval)
