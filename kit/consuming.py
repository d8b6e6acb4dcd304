"""Running a message handler once per message id, in one unit of work with its inbox mark; and
subscribers declared from data (a table of messages) rather than one function each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from kit.db import Database
from kit.uow import UnitOfWork
from kit.inbox import OneStatementHandler, apply_once, first_delivery
from contracts.envelope import Envelope
from observability import set_span_attributes

if TYPE_CHECKING:
    from faststream.rabbit import RabbitBroker, RabbitExchange, RabbitQueue


async def consume_once(
    db: Database,
    consumer: str,
    message: Envelope,
    handler: Callable[[Envelope, UnitOfWork], Awaitable[None]],
    *,
    at_once: Callable[[Database, str, Any], Awaitable[bool]] | None = None,
) -> bool:
    """Run ``handler(message, uow)`` once per message id for ``consumer``, and commit.

    Returns False for a duplicate delivery (nothing done). The inbox mark, the handler's state
    change and the messages it emits commit together. On PostgreSQL, a
    :class:`~kit.inbox.OneStatementHandler` runs as one statement with its inbox mark instead
    (same guarantees, one round trip). ``at_once(db, consumer, message)``, if given, is tried
    first: the handler's common case in one statement with its own inbox guard, True if it did
    it, False (having written nothing) to leave the message to ``handler``.
    """
    # Tag the consume span so the whole life of a booking can be found by its ids.
    set_span_attributes(
        **{
            f"{name.removesuffix('_id')}.id": getattr(message, name)
            for name in ("booking_id", "event_id", "user_id", "payment_id")
            if getattr(message, name, None) is not None
        }
    )
    if at_once is not None and await at_once(db, consumer, message):
        return True
    if db.is_postgres and isinstance(handler, OneStatementHandler):
        return await apply_once(db, consumer, message.message_id, message, handler)
    async with UnitOfWork(db) as uow:
        if not await first_delivery(uow, consumer, message.message_id):
            return False
        await handler(message, uow)
        await uow.commit()
    return True


def subscribe_to(
    broker: RabbitBroker,
    queue: RabbitQueue,
    exchange: RabbitExchange,
    message: type[Envelope],
    receive: Callable[[Any], Awaitable[None]],
    *,
    description: str,
    title: str | None = None,
) -> Any:
    """Subscribe ``receive`` to ``queue``: each delivery decoded as ``message`` (its contract, in
    the AsyncAPI document too), under ``description``. The subscriber is named
    ``on_<routing key>``, as a hand-written one would be."""

    async def on_message(msg: Envelope) -> None:
        await receive(msg)

    on_message.__annotations__["msg"] = message  # decoded as this message's contract
    on_message.__name__ = on_message.__qualname__ = f"on_{message.routing_key}"
    return broker.subscriber(queue, exchange, title=title, description=description)(on_message)
