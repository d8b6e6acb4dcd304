"""Refusing a bus message that contradicts what this service already knows.

A consumer that moves money (booking on ``payment_confirmed``, payments on ``refund_requested``)
checks each message against its own records rather than trusting the producer: otherwise one
compromised service could mint paid bookings by publishing a payment of 0.01. A message that
fails such a check can never succeed, so it is dead-lettered at once for an operator (it is a
:class:`~kit.broker.PermanentFailure`), logged, and counted in ``messages_refused_total``
by channel and reason, which is what an alert should watch.
"""

from __future__ import annotations

import logging
from typing import NoReturn

from kit import metrics
from kit.broker import PermanentFailure
from contracts.envelope import Envelope

log = logging.getLogger(__name__)


class MessageRefused(PermanentFailure):
    """A message that contradicts this service's records; ``reason`` is the metric's label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def refuse(message: Envelope, reason: str, detail: str) -> NoReturn:
    """Count and log ``message`` as refused for ``reason``, and raise :class:`MessageRefused`."""
    channel = message.routing_key
    metrics.refused(channel, reason)
    log.error(
        "refusing %s %s (producer %s): %s: %s",
        channel,
        message.message_id,
        getattr(message, "producer", None),
        reason,
        detail,
    )
    raise MessageRefused(reason, detail)
