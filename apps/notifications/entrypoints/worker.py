"""The delivery worker: sends stored notifications, in the background of the service process.

Each round it releases notifications whose user's contact has arrived (or fails those that
waited too long), then sends every due `pending` notification in batches. Several replicas can
run it at once (rows are claimed with ``FOR UPDATE SKIP LOCKED``). A database outage only pauses
it: the round is retried after a back-off.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from apps.notifications import handlers
from apps.notifications.deps import NotificationsDeps
from apps.notifications.domain import RetryPolicy

if TYPE_CHECKING:
    from kit.service import Service

log = logging.getLogger(__name__)


async def deliver_notifications(service: Service) -> None:
    deps = NotificationsDeps.of(service)
    settings, senders = deps.settings, deps.senders
    if not settings.delivery_worker:
        return
    policy = RetryPolicy(
        max_attempts=settings.delivery_max_attempts,
        backoff_seconds=settings.delivery_backoff_seconds,
        max_backoff_seconds=settings.delivery_max_backoff_seconds,
    )
    contact_wait = timedelta(seconds=settings.contact_wait_seconds)
    batch = settings.delivery_batch_size
    pause = settings.delivery_poll_seconds
    while True:
        try:
            await handlers.address_waiting(service.db, contact_wait=contact_wait, batch_size=batch)
            while (
                await handlers.deliver_due(service.db, senders, policy, batch_size=batch) == batch
            ):
                pass
            pause = settings.delivery_poll_seconds
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # database down: keep the rows, try again later
            log.warning("delivery round failed: %r", exc)
            pause = min(pause * 2, 5.0)
        await asyncio.sleep(pause)
