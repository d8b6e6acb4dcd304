"""Notifications, contacts and the delivery rules. No I/O here.

Life of a notification::

    pending_contact --(the user's contact arrives)--> pending --(sent)--> sent
          |                                              |  ^
          +--(contact_wait_seconds pass)--> failed       |  +--(send failed, attempts left: back-off)
                                              ^----------+--(send failed, no attempts left or permanent)

A notification is created in the unit of work of the message (or request) that caused it, unique
per ``(source_message_id, kind, channel)``; only the delivery worker sends, so a message
delivered twice can never send twice.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from kit.errors import DomainError

Channel = Literal["email", "sms", "push"]
Status = Literal["pending_contact", "pending", "sent", "failed"]
CHANNELS: tuple[Channel, ...] = ("email", "sms", "push")

# Kinds that also go by SMS when the user gave a phone number (e-mail always).
SMS_KINDS = frozenset(
    {
        "booking_confirmed",
        "booking_cancelled",
        "booking_expired",
        "payment_failed",
        "waitlist_offer",
    }
)


class NotificationError(DomainError):
    pass


class NoAddress(NotificationError):
    """The user is known but has no address for the channel (e.g. SMS without a phone)."""

    code, field_in = "no-address", "body"

    def __init__(self, detail: str, *, field: str | None = "channel", **extra: object) -> None:
        super().__init__(detail, field=field, **extra)


@dataclass(frozen=True)
class Contact:
    """How to reach a user, as told by their user_registered message."""

    user_id: uuid.UUID
    email: str
    full_name: str = ""
    phone: str | None = None

    def address_for(self, channel: Channel) -> str | None:
        if channel == "email":
            return self.email
        if channel == "sms":
            return self.phone
        return str(self.user_id)  # push goes to the user's devices, by user id

    def channels_for(self, kind: str) -> list[Channel]:
        """The channels a notification of ``kind`` goes out on for this user."""
        return ["email", "sms"] if kind in SMS_KINDS and self.phone else ["email"]


def address_without_contact(user_id: uuid.UUID, channel: Channel) -> str | None:
    """Push needs no contact details; e-mail and SMS wait for them."""
    return str(user_id) if channel == "push" else None


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    backoff_seconds: float
    max_backoff_seconds: float

    def delay_after(self, attempts: int) -> timedelta:
        """Pause before the next try, after ``attempts`` failed sends (exponential, capped)."""
        return timedelta(
            seconds=min(self.backoff_seconds * 2 ** (attempts - 1), self.max_backoff_seconds)
        )


# The context key under which a notification carries QR codes to show with it (a JSON list of
# ``{name, label, text}``): the e-mail sender attaches each as a PNG image (a ticket's code).
QR_CODES = "qr_codes"


@dataclass(frozen=True)
class Notification:
    id: uuid.UUID
    user_id: uuid.UUID
    kind: str
    channel: Channel
    subject: str
    body: str
    status: Status
    recipient: str | None
    source_message_id: uuid.UUID
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None = None
    # The template and the values it was rendered with (rendered again when the contact arrives).
    context: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        *,
        user_id: uuid.UUID,
        kind: str,
        channel: Channel,
        subject: str,
        body: str,
        source_message_id: uuid.UUID,
        contact: Contact | None,
        now: datetime,
        context: dict[str, str] | None = None,
        id: uuid.UUID | None = None,  # noqa: A002
    ) -> Notification:
        """A new notification: ``pending`` if it can be addressed, ``pending_contact`` if the
        user's contact is not known yet, ``failed`` if the user has no address for the channel."""
        recipient = (
            contact.address_for(channel) if contact else address_without_contact(user_id, channel)
        )
        status: Status = "pending"
        error = None
        if recipient is None and contact is None:
            status = "pending_contact"
        elif recipient is None:
            status, error = "failed", f"the user has no address for {channel}"
        return cls(
            id=id or uuid.uuid4(),
            user_id=user_id,
            kind=kind,
            channel=channel,
            subject=subject,
            body=body,
            status=status,
            recipient=recipient,
            source_message_id=source_message_id,
            attempts=0,
            last_error=error,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
            context=context or {},
        )

    def addressed(
        self, contact: Contact, *, subject: str, body: str, now: datetime
    ) -> Notification:
        """The user's contact arrived: the notification (its text now addressed to them by name)
        can go out, or never can on this channel."""
        recipient = contact.address_for(self.channel)
        if recipient is None:
            return replace(
                self,
                status="failed",
                last_error=f"the user has no address for {self.channel}",
                updated_at=now,
            )
        return replace(
            self,
            status="pending",
            recipient=recipient,
            subject=subject,
            body=body,
            next_attempt_at=now,
            updated_at=now,
        )

    def contact_never_came(self, *, now: datetime) -> Notification:
        return replace(
            self,
            status="failed",
            last_error="the user's contact details never arrived",
            updated_at=now,
        )

    def delivered(self, *, now: datetime) -> Notification:
        return replace(
            self,
            status="sent",
            attempts=self.attempts + 1,
            last_error=None,
            sent_at=now,
            updated_at=now,
        )

    def delivery_failed(
        self, error: str, *, permanent: bool, policy: RetryPolicy, now: datetime
    ) -> Notification:
        attempts = self.attempts + 1
        if permanent or attempts >= policy.max_attempts:
            return replace(
                self, status="failed", attempts=attempts, last_error=error, updated_at=now
            )
        return replace(
            self,
            status="pending",
            attempts=attempts,
            last_error=error,
            updated_at=now,
            next_attempt_at=now + policy.delay_after(attempts),
        )


# --- webhooks -------------------------------------------------------------------------------
#
# Life of a webhook delivery (one per message and matching endpoint, id derived from both)::
#
#     pending --(2xx)--> delivered
#        |  ^
#        |  +--(non-2xx, time-out, refused address: back-off, while before give_up_at)
#        +--(still failing at give_up_at)--> failed --(manual retry)--> pending

DeliveryStatus = Literal["pending", "delivered", "failed"]

# Addresses a webhook may never reach unless its host is listed in WEBHOOK_ALLOWED_HOSTS: the
# cloud metadata endpoints by name, and every non-global range (loopback, private, link-local,
# multicast, unspecified, reserved, shared address space...).
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


class WebhookNotFound(NotificationError):
    status, code = 404, "webhook-not-found"


class DeliveryNotFound(NotificationError):
    status, code = 404, "delivery-not-found"


class DeliveryInFlight(NotificationError):
    """A retry by hand of a delivery the worker is sending right now (it would go out twice)."""

    status, code = 409, "delivery-in-flight"


class WebhookLimitReached(NotificationError):
    """The owner already has as many endpoints as one owner may."""

    status, code = 409, "webhook-limit-reached"


class EventNotFound(NotificationError):
    status, code = 404, "event-not-found"


class UrlNotAllowed(NotificationError):
    """The webhook's target is not a public http(s) address."""

    code = "url-not-allowed"
    field_in = "body"


def address_allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for a public unicast address a webhook may be sent to."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return address_allowed(mapped)
    if address in METADATA_ADDRESSES:
        return False
    return address.is_global and not (
        address.is_multicast
        or address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_unspecified
        or address.is_reserved
    )


def webhook_secret() -> str:
    """A new endpoint's signing secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def delivery_id(message_id: uuid.UUID, endpoint_id: uuid.UUID) -> uuid.UUID:
    """The one id of a message's delivery to an endpoint: the same on every redelivery of the
    message and every retry, so the receiver can deduplicate on ``webhook-id``."""
    return uuid.uuid5(endpoint_id, str(message_id))


# How long a delivery is retried (its ``give_up_at`` is this after it was created).
WEBHOOK_RETRY_WINDOW = timedelta(hours=24)


def webhook_id(delivery: uuid.UUID) -> str:
    return f"msg_{delivery.hex}"


@dataclass(frozen=True)
class WebhookBackoff:
    """When to try a failed delivery again: ``first_seconds`` after the first failure, then
    ``factor`` times longer each time (capped at ``max_seconds``), each pause jittered by ±20%
    so a recovering endpoint is not hit by every retry at once; the last one at ``give_up_at``."""

    first_seconds: float = 5.0
    factor: float = 4.0
    max_seconds: float = 6 * 3600.0

    def next_attempt(
        self, attempts: int, *, now: datetime, give_up_at: datetime, jitter: float
    ) -> datetime | None:
        """After ``attempts`` failed attempts: the next one's time, or None to give up.
        ``jitter`` is a number in [-1, 1]."""
        delay = min(self.first_seconds * self.factor ** (attempts - 1), self.max_seconds)
        if now >= give_up_at:
            return None
        return min(now + timedelta(seconds=delay * (1 + 0.2 * jitter)), give_up_at)
