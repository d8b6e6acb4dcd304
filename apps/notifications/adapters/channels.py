"""Senders, one per channel: e-mail over SMTP, SMS and push through provider interfaces.

A sender either returns (the provider accepted the notification) or raises
:class:`DeliveryError`; ``permanent=True`` means retrying cannot help (e.g. the SMTP server
refused the recipient with a 5xx), so the notification fails at once instead of being retried.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Protocol

import aiosmtplib

from apps.notifications.config import NotificationSettings
from apps.notifications.domain import QR_CODES, Channel, Notification
from kit.qr import qr_png

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Sender(Protocol):
    async def send(self, notification: Notification) -> None: ...


class SmtpEmailSender:
    """Sends e-mail over SMTP (host, port, credentials and STARTTLS from settings).

    The ``Message-ID`` is derived from the notification id, so should a send ever be repeated
    (a crash between the server's acceptance and our commit) mail clients see the same message.
    """

    def __init__(self, settings: NotificationSettings) -> None:
        self.settings = settings
        address = parseaddr(settings.mail_from)[1]
        self.domain = address.rpartition("@")[2] or "eventbooking.local"

    def message_id(self, notification: Notification) -> str:
        return f"<{notification.id}@{self.domain}>"

    def build(self, notification: Notification) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.settings.mail_from
        msg["To"] = notification.recipient
        msg["Subject"] = notification.subject
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = self.message_id(notification)
        msg["X-Notification-Kind"] = notification.kind
        msg.set_content(notification.body)
        for code in json.loads(notification.context.get(QR_CODES) or "[]"):
            msg.add_attachment(
                qr_png(code["text"]),
                maintype="image",
                subtype="png",
                filename=code["name"],
                disposition="inline",
            )
        return msg

    async def send(self, notification: Notification) -> None:
        s = self.settings
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username or None,
            password=s.smtp_password or None,
            start_tls=s.smtp_starttls,
            timeout=s.smtp_timeout_seconds,
        )
        try:
            # Connected (and logged in) first: while the server is down, a retry costs a
            # refused connection, not the drawing of every QR code again. The codes (segno,
            # pure Python: tens of ms each) are drawn off the event loop.
            async with client:
                message = await asyncio.to_thread(self.build, notification)
                await client.send_message(message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            raise DeliveryError(
                f"SMTP refused the recipient: {exc}", permanent=all(c >= 500 for c in codes)
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"SMTP error {exc.code}: {exc.message}", permanent=exc.code >= 500
            ) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryError(f"SMTP unavailable: {type(exc).__name__}: {exc}") from exc


class LoggingSmsProvider:
    """The default SMS provider: logs the text (and keeps the last few for inspection)."""

    def __init__(self, settings: NotificationSettings) -> None:
        self.sent: deque[tuple[str, str]] = deque(maxlen=100)

    async def send(self, notification: Notification) -> None:
        log.info("sms to %s [%s]: %s", notification.recipient, notification.id, notification.body)
        self.sent.append((notification.recipient or "", notification.body))


class LoggingPushProvider:
    """The default push provider: logs the title and text (and keeps the last few)."""

    def __init__(self, settings: NotificationSettings) -> None:
        self.sent: deque[tuple[str, str, str]] = deque(maxlen=100)

    async def send(self, notification: Notification) -> None:
        log.info(
            "push to user %s [%s]: %s: %s",
            notification.recipient,
            notification.id,
            notification.subject,
            notification.body,
        )
        self.sent.append((notification.recipient or "", notification.subject, notification.body))


SMS_PROVIDERS: dict[str, type[Sender]] = {"log": LoggingSmsProvider}
PUSH_PROVIDERS: dict[str, type[Sender]] = {"log": LoggingPushProvider}


def build_senders(settings: NotificationSettings) -> dict[Channel, Sender]:
    """The sender for each channel, as configured (unknown provider names fail at start-up)."""
    try:
        sms = SMS_PROVIDERS[settings.sms_provider]
        push = PUSH_PROVIDERS[settings.push_provider]
    except KeyError as exc:
        raise ValueError(f"unknown SMS/push provider {exc.args[0]!r}") from None
    senders: dict[Channel, Sender] = {
        "email": SmtpEmailSender(settings),
        "sms": sms(settings),  # type: ignore[call-arg]
        "push": push(settings),  # type: ignore[call-arg]
    }
    return senders
