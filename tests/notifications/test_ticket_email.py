"""The confirmation e-mail carries the tickets: each one's QR code as a PNG image and the
attendee's name. Received by a real SMTP server (the sink), the PNGs are decoded with a real QR
reader (ZXing) and must give back each ticket's secret. Real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from apps.notifications.bootstrap import build
from contracts.messages import BookingConfirmed
from tests.notifications import helpers as h
from tests.notifications.helpers import FAST_RETRIES, issued, send
from tests.support.qr import read_qr_png
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def service(start_service, module_sink):
    async with start_service(build, smtp_port=module_sink.port, **FAST_RETRIES) as svc:
        yield svc


async def test_confirmation_email_carries_each_tickets_qr_code_and_attendee(
    service, bus, module_sink
):
    user = h.user_registered(full_name="Ada Lovelace")
    await send(bus, user)
    await eventually(lambda: h.contact_of(service, user.user_id))
    booking_id, event_id = uuid.uuid4(), uuid.uuid4()
    tickets = issued(event_id, booking_id, ["Ada Lovelace", None])
    confirmed: BookingConfirmed = h.booking_confirmed(
        user.user_id, booking_id=booking_id, event_id=event_id, tickets=tickets
    )
    await send(bus, confirmed)

    [mail] = await eventually(lambda: module_sink.mail_to(user.email, "Booking confirmed"))

    body = mail.body
    assert f"Ticket 1: Ada Lovelace ({tickets[0].ticket_id})" in body
    assert f"Ticket 2: unnamed ({tickets[1].ticket_id})" in body
    images = [p for p in mail.message.iter_attachments() if p.get_content_type() == "image/png"]
    assert [p.get_filename() for p in images] == [
        f"ticket-{n}-{t.ticket_id}.png" for n, t in enumerate(tickets, 1)
    ]
    decoded = [read_qr_png(p.get_content()) for p in images]
    assert decoded == [[t.secret] for t in tickets]
    # the secrets are not written into the text itself (only the codes carry them)
    assert all(t.secret not in body for t in tickets)

    # for a person to look at: the e-mail and its first code, where TICKET_MAIL_DIR says
    if out := os.environ.get("TICKET_MAIL_DIR"):
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "confirmation.eml").write_bytes(mail.message.as_bytes())
        (Path(out) / "ticket-1.png").write_bytes(images[0].get_content())


async def test_a_confirmation_from_before_tickets_still_parses_and_is_mailed(
    service, bus, module_sink
):
    user = h.user_registered()
    await send(bus, user)
    old = h.booking_confirmed(user.user_id).model_dump(mode="json")
    del old["tickets"]
    legacy = BookingConfirmed.model_validate(old)
    assert legacy.tickets == []
    await send(bus, legacy)
    [mail] = await eventually(lambda: module_sink.mail_to(user.email, "Booking confirmed"))
    assert not list(mail.message.iter_attachments())
    assert str(legacy.booking_id) in mail.body and "Your tickets" not in mail.body
