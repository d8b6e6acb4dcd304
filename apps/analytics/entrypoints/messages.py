"""The analytics subscriber. It hands each fact to the use case, nothing more."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

from apps.analytics import handlers
from kit.consuming import consume_once
from contracts.messages import AnalyticsFact
from contracts.topology import ANALYTICS_EXCHANGE, ANALYTICS_QUEUE

if TYPE_CHECKING:
    from kit.service import Service

CONSUMER = "analytics"


def subscribe(service: Service) -> None:
    async def record_analytics_fact(fact: AnalyticsFact) -> None:
        """Every domain fact analytics counts, delivered on the `analytics` fanout exchange.

        The `eventbooking` topic exchange forwards these routing keys to it: `event_created`,
        `event_updated`, `event_cancelled` (full event snapshots; the highest `version` wins),
        `booking_created`, `booking_confirmed`, `booking_cancelled`, `booking_expired` (booking
        transitions) and `payment_confirmed`, `payment_failed`, `payment_refunded` (payment
        transitions). The payload is one of those messages, told apart by `message_type`.

        Delivery is at least once: a message is counted once per `message_id` (a redelivery
        changes nothing), and each booking or payment transition is counted once whatever the
        order its facts arrive in. A payload that matches none of the variants is dead-lettered
        to `analytics.dlq`.
        """
        await consume_once(service.db, CONSUMER, fact, handlers.record_fact)

    service.broker.subscriber(
        ANALYTICS_QUEUE,
        ANALYTICS_EXCHANGE,
        title="analytics:consume",
        # the docstring, dedented so the AsyncAPI page renders it as Markdown text, not code
        description=inspect.cleandoc(record_analytics_fact.__doc__ or ""),
    )(record_analytics_fact)
