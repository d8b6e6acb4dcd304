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
