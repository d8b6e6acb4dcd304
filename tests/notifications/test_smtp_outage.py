"""E-mail delivery when the SMTP server is down: bounded retries with back-off, then `failed`.

Each test runs its own notifications service (and, being its own module, never shares the
queues or the delivery work with the service of test_delivery.py)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from apps.notifications.adapters import channels
from apps.notifications.bootstrap import build
from contracts.messages import UserRegistered
from tests.notifications import helpers as h
from tests.notifications.helpers import FAST_RETRIES, issued, send
from tests.support.waiting import eventually
from kit.qr import qr_png

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def welcome_while_smtp_is_down(
    start_service: Any, sink: Any, bus: Any, *, max_attempts: int
) -> AsyncIterator[tuple[Any, UserRegistered]]:
    """A notifications service making at most ``max_attempts`` deliveries (fast retries), the
    SMTP server down, and a new user's ``user_registered`` sent: the service and the message."""
    async with start_service(
        build, smtp_port=sink.port, delivery_max_attempts=max_attempts, **FAST_RETRIES
    ) as svc:
        await sink.down()
        msg = h.user_registered()
        await send(bus, msg)
        yield svc, msg


async def test_smtp_outage_is_retried_and_delivered_when_the_server_is_back(
    start_service, sink, bus
):
    async with welcome_while_smtp_is_down(start_service, sink, bus, max_attempts=50) as (svc, msg):
        [row] = await eventually(
            lambda: h.stored(svc, user_id=msg.user_id, status="pending"),
            until=lambda rows: len(rows) == 1 and rows[0].attempts >= 2,
        )
        assert "SMTP unavailable" in row.last_error
        assert sink.to(msg.email) == []

        await sink.up()
        [mail] = await eventually(lambda: sink.mail_to(msg.email))
        assert mail.subject == "Welcome to Event Booking"
        [row] = await eventually(lambda: h.stored(svc, user_id=msg.user_id, status="sent"))
        assert row.attempts >= 3 and row.last_error is None


async def test_smtp_outage_beyond_the_retry_bound_marks_the_notification_failed(
    start_service, sink, bus
):
    async with welcome_while_smtp_is_down(start_service, sink, bus, max_attempts=3) as (svc, msg):
        [row] = await eventually(lambda: h.stored(svc, user_id=msg.user_id, status="failed"))
        assert row.attempts == 3 and "SMTP unavailable" in row.last_error
        await sink.up()
        # a failed notification stays failed: nothing is sent once the server is back
        await eventually(lambda: h.stored(svc, user_id=msg.user_id, status="failed"))
        assert sink.to(msg.email) == []


async def test_qr_codes_are_drawn_only_once_the_server_answers(
    start_service, sink, bus, monkeypatch
):
    """A retry while the server is down costs a refused connection, not the drawing of every
    ticket's QR code again (pure Python, tens of ms each)."""
    drawn: list[str] = []

    def counting_qr_png(text: str) -> bytes:
        drawn.append(text)
        return qr_png(text)

    monkeypatch.setattr(channels, "qr_png", counting_qr_png)
    async with start_service(build, smtp_port=sink.port, **FAST_RETRIES) as svc:
        user = h.user_registered()
        await send(bus, user)
        await eventually(lambda: sink.mail_to(user.email))  # the welcome: no QR code
        await sink.down()
        booking_id, event_id = uuid.uuid4(), uuid.uuid4()
        tickets = issued(event_id, booking_id, ["Ada Lovelace", None])
        await send(
            bus,
            h.booking_confirmed(
                user.user_id, booking_id=booking_id, event_id=event_id, tickets=tickets
            ),
        )
        await eventually(
            lambda: h.stored(svc, user_id=user.user_id, status="pending"),
            until=lambda rows: len(rows) == 1 and rows[0].attempts >= 3,
        )
        assert drawn == []

        await sink.up()
        await eventually(
            lambda: h.stored(svc, user_id=user.user_id, status="sent"),
            until=lambda rows: len(rows) == 2,
        )
        assert sorted(drawn) == sorted(t.secret for t in tickets)
