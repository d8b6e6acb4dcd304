"""Broker construction and the delivery policy every consumer follows.

* Telemetry: FastStream's OpenTelemetry middleware puts W3C context into message headers and
  makes a consume span per message, so queues do not break traces.
* Acks: a message is acked only after its handler returned, i.e. after the handler's unit of
  work committed. On failure:
  - a *permanent* failure (the payload does not match its contract, or the handler raised
    :class:`PermanentFailure`) is rejected without requeue: the queue dead-letters it at once;
  - anything else is treated as *transient* (database or broker hiccup): the message is
    requeued after a short back-off, and the quorum queue's delivery limit bounds the retries;
    past it the message is dead-lettered. Never an endless loop, never a silent drop.
* Logging: the per-message log line is at DEBUG (it costs throughput at INFO).

Publishing is :mod:`kit.publishing`; running a handler once per message is :mod:`kit.consuming`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from faststream import BaseMiddleware
from faststream.exceptions import HandlerException, NackMessage, RejectMessage
from faststream.middlewares import AckPolicy
from faststream.rabbit import Channel, RabbitBroker
from faststream.rabbit.opentelemetry import RabbitTelemetryMiddleware
from faststream.rabbit.prometheus import RabbitPrometheusMiddleware
from pydantic import ValidationError

from kit import metrics
from kit.settings import ServiceSettings
from contracts.topology import DELIVERY_LIMIT

log = logging.getLogger(__name__)


class PermanentFailure(Exception):  # noqa: N818
    """Raised by a handler for a message that can never succeed: it is dead-lettered at once."""


def _delivery_count(msg: Any) -> int:
    headers = getattr(msg, "headers", None) or {}
    try:
        return int(headers.get("x-delivery-count", 0))
    except (TypeError, ValueError):
        return 0


def delivery_policy(max_backoff: float) -> type[BaseMiddleware]:
    class DeliveryPolicyMiddleware(BaseMiddleware):
        async def consume_scope(self, call_next: Callable[[Any], Awaitable[Any]], msg: Any) -> Any:
            try:
                return await call_next(msg)
            except HandlerException:
                raise
            except (
                ValidationError,
                json.JSONDecodeError,
                UnicodeDecodeError,
                PermanentFailure,
            ) as exc:
                log.error(
                    "dead-lettering message %s: %s",
                    getattr(msg, "message_id", "?"),
                    str(exc).splitlines()[0],
                )
                metrics.dead_lettered(
                    "invalid" if not isinstance(exc, PermanentFailure) else "permanent"
                )
                raise RejectMessage(requeue=False) from exc
            except Exception as exc:
                attempt = _delivery_count(msg)
                if attempt >= DELIVERY_LIMIT:  # the broker dead-letters this one on nack
                    metrics.dead_lettered("retries_exhausted")
                log.warning(
                    "message %s failed (delivery %d), will be retried: %r",
                    getattr(msg, "message_id", "?"),
                    attempt + 1,
                    exc,
                )
                await asyncio.sleep(min(0.05 * 2**attempt, max_backoff))
                raise NackMessage(requeue=True) from exc

    return DeliveryPolicyMiddleware


def make_broker(settings: ServiceSettings, **overrides: Any) -> RabbitBroker:
    kw: dict[str, Any] = {
        "default_channel": Channel(
            prefetch_count=settings.consumer_prefetch, on_return_raises=True
        ),
        "ack_policy": AckPolicy.REJECT_ON_ERROR,
        "middlewares": [
            RabbitTelemetryMiddleware(),
            RabbitPrometheusMiddleware(registry=metrics.REGISTRY, app_name=settings.service_name),
            delivery_policy(settings.consumer_max_backoff_seconds),
        ],
        "log_level": logging.DEBUG,
        "app_id": settings.service_name,
        "graceful_timeout": 15.0,
        "reconnect_interval": 1.0,
        "description": "RabbitMQ of the Event Booking Platform",
    }
    kw.update(overrides)
    return RabbitBroker(settings.rabbitmq_url, **kw)
