"""Where messages travel: exchanges, routing keys, queues and dead-lettering, declared once.

Shape:

* Every fact is published to the durable topic exchange ``eventbooking`` with its channel name as
  routing key (``user_registered``, ``event_created``, ``booking_created``, ``payment_confirmed``,
  ``notifications``... see ``Model.routing_key``).
* Every consuming service has its own durable queue per channel it needs, named
  ``<service>.<channel>``: each interested service gets every message (fan-out between services)
  while replicas of one service compete for it (one queue, many consumers).
* The ``analytics`` channel is a fanout exchange bound to ``eventbooking`` for every routing key
  analytics needs, so one ``analytics`` queue receives every domain fact it counts.
* Queues are quorum queues with a delivery limit: a message that keeps failing is dead-lettered
  (``eventbooking.dlx``) into ``<queue>.dlq``, at-least-once, never looped forever or dropped.
"""

from __future__ import annotations

from typing import get_args

from faststream.rabbit import ExchangeType, QueueType, RabbitBroker, RabbitExchange, RabbitQueue

from contracts.envelope import Envelope
from contracts.messages import (
    AnalyticsFact,
    BookingCancelled,
    BookingConfirmed,
    BookingCreated,
    BookingExpired,
    EventCancelled,
    EventCreated,
    EventUpdated,
    NotificationRequested,
    PaymentConfirmed,
    PaymentFailed,
    PaymentRefunded,
    RefundFailed,
    RefundRequested,
    TicketCheckedIn,
    UserRegistered,
    VoucherCreated,
    VoucherUpdated,
    WaitlistOffered,
)

DOMAIN_EXCHANGE = RabbitExchange("eventbooking", type=ExchangeType.TOPIC, durable=True)
DEAD_LETTER_EXCHANGE = RabbitExchange("eventbooking.dlx", type=ExchangeType.DIRECT, durable=True)
ANALYTICS_EXCHANGE = RabbitExchange("analytics", type=ExchangeType.FANOUT, durable=True)

# Deliveries of one message before it is parked in its dead-letter queue.
DELIVERY_LIMIT = 5

# Every fact the analytics read model is built from is routed to the `analytics` channel: the
# variants of ``AnalyticsFact``, the union the analytics subscriber decodes (one list, not two).
ANALYTICS_FACTS: tuple[type[Envelope], ...] = get_args(get_args(AnalyticsFact)[0])

# Who consumes what from the domain exchange (analytics reads its own channel, below).
CONSUMERS: dict[str, tuple[type[Envelope], ...]] = {
    "booking": (
        EventCreated,
        EventUpdated,
        EventCancelled,
        PaymentConfirmed,
        PaymentFailed,
        PaymentRefunded,
        RefundFailed,
        VoucherCreated,
        VoucherUpdated,
    ),
    # a voucher's uses as booking counts them (each booking fact says what it did to them)
    "events": (BookingCreated, BookingConfirmed, BookingCancelled, BookingExpired),
    "payments": (BookingCreated, BookingExpired, BookingCancelled, RefundRequested),
    "notifications": (
        UserRegistered,
        BookingConfirmed,
        BookingCancelled,
        BookingExpired,
        PaymentFailed,
        PaymentRefunded,
        EventCancelled,
        NotificationRequested,
        WaitlistOffered,
    ),
}

# The messages organizers can receive as webhooks (their kind is the routing key): each one that
# concerns an event. Adding a kind is one line here; notifications consumes every one of them
# (and `event_created`, which tells it whose event is whose).
WEBHOOK_MESSAGES: tuple[type[Envelope], ...] = (
    EventCreated,
    EventUpdated,
    EventCancelled,
    BookingCreated,
    BookingConfirmed,
    BookingCancelled,
    BookingExpired,
    PaymentConfirmed,
    PaymentFailed,
    PaymentRefunded,
    RefundFailed,
    TicketCheckedIn,
    WaitlistOffered,
)
CONSUMERS["notifications"] += tuple(
    m for m in WEBHOOK_MESSAGES if m not in CONSUMERS["notifications"]
)

# Queues bound to the domain exchange only while their service's own data needs them
# (``kit.bindings``): events counts vouchers' uses only while it has vouchers; notifications
# reads the webhook kinds that are no notice of its own and name no organizer only while an
# endpoint subscribes to them. Every service declares them; only their own service binds them.
BOUND_WHILE_NEEDED: dict[str, tuple[type[Envelope], ...]] = {
    "events": CONSUMERS["events"],
    "notifications": (BookingCreated, PaymentConfirmed, RefundFailed, TicketCheckedIn),
}


def _quorum_queue(name: str, routing_key: str = "") -> RabbitQueue:
    return RabbitQueue(
        name,
        queue_type=QueueType.QUORUM,
        durable=True,
        routing_key=routing_key,
        arguments={
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE.name,
            "x-dead-letter-routing-key": name,
            # at-least-once dead-lettering: a parked message is never lost on the way to its DLQ
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )


def queue_for(service: str, message: type[Envelope]) -> RabbitQueue:
    """The durable queue through which ``service`` consumes ``message`` from the domain exchange."""
    return _quorum_queue(f"{service}.{message.routing_key}", routing_key=message.routing_key)


ANALYTICS_QUEUE = _quorum_queue("analytics")


def dead_letter_queue_name(queue: RabbitQueue | str) -> str:
    return f"{queue if isinstance(queue, str) else queue.name}.dlq"


def all_queues() -> tuple[RabbitQueue, ...]:
    """Every consumer queue of the platform."""
    queues = [queue_for(service, m) for service, ms in CONSUMERS.items() for m in ms]
    return (*queues, ANALYTICS_QUEUE)


async def declare_topology(broker: RabbitBroker) -> None:
    """Declare the whole topology: exchanges, analytics bindings, every queue and its DLQ.

    Every service runs this on start-up (idempotent, safe for replicas racing). Declaring all
    consumer queues, not only its own, means a message is never unroutable because its
    consumers have not started yet: it waits in their queue.
    """
    domain = await broker.declare_exchange(DOMAIN_EXCHANGE)
    await broker.declare_exchange(DEAD_LETTER_EXCHANGE)
    analytics = await broker.declare_exchange(ANALYTICS_EXCHANGE)
    for fact in ANALYTICS_FACTS:
        await analytics.bind(domain, routing_key=fact.routing_key)
    conditional = {
        queue_for(service, m).name for service, ms in BOUND_WHILE_NEEDED.items() for m in ms
    }
    for queue in all_queues():
        await declare_queue(
            broker,
            queue,
            ANALYTICS_EXCHANGE if queue is ANALYTICS_QUEUE else DOMAIN_EXCHANGE,
            bind=queue.name not in conditional,
        )


async def declare_queue(
    broker: RabbitBroker, queue: RabbitQueue, exchange: RabbitExchange, *, bind: bool = True
) -> None:
    """Declare ``queue`` (bound to ``exchange`` on its routing key unless ``bind`` is false) and
    its dead-letter queue."""
    source = await broker.declare_exchange(exchange)
    declared = await broker.declare_queue(queue)
    if bind:
        await declared.bind(source, routing_key=queue.routing_key)
    dlx = await broker.declare_exchange(DEAD_LETTER_EXCHANGE)
    dlq = await broker.declare_queue(
        RabbitQueue(dead_letter_queue_name(queue), queue_type=QueueType.QUORUM, durable=True)
    )
    await dlq.bind(dlx, routing_key=queue.name)
