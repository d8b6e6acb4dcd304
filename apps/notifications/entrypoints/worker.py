"""The delivery workers: send stored notifications and webhook deliveries, in the background of
the service process.

Each round it releases notifications whose user's contact has arrived (or fails those that
waited too long), then sends every due `pending` notification in batches. Several replicas can
run it at once (rows are claimed with ``FOR UPDATE SKIP LOCKED``). A database outage only pauses
it: the round is retried after a back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from apps.notifications import handlers, webhooks
from apps.notifications.adapters.webhooks import WebhookSender
from apps.notifications.deps import NotificationsDeps
from apps.notifications.domain import RetryPolicy, WebhookBackoff
from kit.bindings import keep_reconciled

if TYPE_CHECKING:
    from kit.service import Service

log = logging.getLogger(__name__)

# Messages that waited for their event's organizer, passed on per webhook round at most.
WAITING_BATCH = 100


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


async def deliver_webhooks(service: Service) -> None:
    """The webhook worker: each round it passes on the messages that waited for their event's
    organizer (``webhooks.release_waiting``), then leases due deliveries and sends each in its
    own task, at most ``webhook_concurrency`` at once and ``webhook_per_endpoint`` to one
    endpoint, each within ``webhook_timeout_seconds``; a slow or dead endpoint only ever holds
    its own few slots."""
    deps = NotificationsDeps.of(service)
    settings = deps.settings
    if not settings.webhook_worker:
        return
    backoff = WebhookBackoff(
        first_seconds=settings.webhook_first_retry_seconds,
        max_seconds=settings.webhook_max_retry_seconds,
    )
    sender = WebhookSender(deps.webhook_targets, timeout=settings.webhook_timeout_seconds)
    in_flight: Counter[uuid.UUID] = Counter()
    tasks: set[asyncio.Task[None]] = set()
    wake = asyncio.Event()
    # A lease outlives any send (the time-out) by a margin, then the row is due again.
    lease = settings.webhook_timeout_seconds + 60.0

    async def send(row: Any) -> None:
        try:
            await webhooks.send_delivery(service.db, sender, deps.secret_box, backoff, row)
        except Exception as exc:  # database down: the lease runs out, the row is sent again
            log.warning("webhook delivery %s not recorded: %r", row.id, exc)
        finally:
            in_flight[row.endpoint_id] -= 1
            if in_flight[row.endpoint_id] <= 0:
                del in_flight[row.endpoint_id]
            wake.set()

    pause = settings.webhook_poll_seconds
    try:
        while True:
            free = settings.webhook_concurrency - len(tasks)
            claimed = 0
            if free > 0:
                try:
                    await webhooks.release_waiting(service.db, limit=WAITING_BATCH)
                    rows = await webhooks.claim_deliveries(
                        service.db,
                        limit=free,
                        per_endpoint=settings.webhook_per_endpoint,
                        in_flight=in_flight,
                        lease_seconds=lease,
                    )
                    pause = settings.webhook_poll_seconds
                except Exception as exc:  # database down: try again later
                    log.warning("webhook round failed: %r", exc)
                    rows, pause = [], min(pause * 2, 5.0)
                claimed = len(rows)
                for row in rows:
                    in_flight[row.endpoint_id] += 1
                    task = asyncio.create_task(send(row), name=f"webhook-{row.id}")
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            if claimed and claimed == free:
                continue  # more may be due, but every slot is taken: wait for one below
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), pause)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await sender.aclose()


async def keep_bindings(service: Service) -> None:
    """Unbind the webhook-only kinds no endpoint subscribes to (``kit.bindings``)."""
    deps = NotificationsDeps.of(service)
    await keep_reconciled(deps.bindings, service.db, every=deps.settings.bindings_reconcile_seconds)
