"""A notification's subject is one line whatever its values hold: an event title or an admin's
subject with a line break must still make a mail the server takes (it used to fail for good)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from apps.notifications.adapters.channels import SmtpEmailSender
from apps.notifications.config import NotificationSettings
from apps.notifications.domain import Notification
from apps.notifications.templates import render


def test_a_title_with_line_breaks_makes_a_one_line_subject_a_mail_can_carry():
    title = "Rock night\r\nBcc: everyone@example.com\nreprise"
    subject, body = render(
        "event_cancelled",
        "email",
        title=title,
        venue="Hall",
        starts_at="2027-05-01 20:00 UTC",
        event_id=uuid.uuid4(),
        reason="-",
        greeting="Hello",
    )
    assert subject == "Your event was cancelled: Rock night Bcc: everyone@example.com reprise"
    assert title in body  # the body keeps the text as written

    now = datetime.now(UTC)
    notification = Notification(
        id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        kind="event_cancelled",
        channel="email",
        subject=subject,
        body=body,
        status="pending",
        recipient="organizer@example.com",
        source_message_id=uuid.uuid4(),
        attempts=0,
        last_error=None,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    mail = SmtpEmailSender(NotificationSettings()).build(notification)
    assert mail["Subject"] == subject and "Bcc" not in mail.keys()
