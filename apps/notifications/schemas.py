"""HTTP request and response bodies of the notifications API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from apps.notifications.domain import Channel, Notification, Status, webhook_id
from apps.notifications.webhooks import WEBHOOK_KINDS


class NotificationSend(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: uuid.UUID = Field(description="Who to tell.")
    channel: Channel = Field(examples=["email"])
    subject: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = Field(
        default="", description="E-mail subject / push title (ignored for SMS)."
    )
    body: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000)]


class NotificationQueued(BaseModel):
    id: uuid.UUID
    status: Status = Field(
        description="`pending` (the delivery worker will send it) or `pending_contact` (the "
        "user's contact details are not known yet; it goes out when they arrive)."
    )


class NotificationPublic(BaseModel):
    id: uuid.UUID
    kind: str = Field(examples=["booking_confirmed"])
    channel: Channel
    subject: str
    body: str
    status: Status
    attempts: int = Field(description="Send attempts so far.")
    created_at: datetime
    sent_at: datetime | None

    @classmethod
    def of(cls, n: Notification) -> NotificationPublic:
        return cls.model_validate(n, from_attributes=True)


# --- webhooks ------------------------------------------------------------------------------------

# The kinds an endpoint may subscribe to (anything else is a 422): one list, see WEBHOOK_KINDS.
WebhookKind = Literal[WEBHOOK_KINDS]  # type: ignore[valid-type]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)] = (
        Field(
            description="Where to POST deliveries: an http(s) URL on a public address.",
            examples=["https://hooks.example.com/eventbooking"],
        )
    )
    events: list[WebhookKind] = Field(
        min_length=1,
        description="The message kinds to receive.",
        examples=[["booking_confirmed", "booking_cancelled"]],
    )
    event_id: uuid.UUID | None = Field(
        default=None, description="Only this event's messages; absent: all of the caller's events."
    )


class WebhookPublic(BaseModel):
    id: uuid.UUID
    url: str
    events: list[str]
    event_id: uuid.UUID | None
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> WebhookPublic:
        return cls.model_validate(row, from_attributes=True)


class WebhookCreated(WebhookPublic):
    secret: str = Field(
        description="The signing secret (`whsec_` + base64): shown only in this answer.",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


class WebhookAttempt(BaseModel):
    attempted_at: datetime
    status_code: int | None = Field(description="The endpoint's answer; null: none (time-out...).")
    error: str | None
    duration_ms: int
    next_attempt_at: datetime | None = Field(description="The retry this failure scheduled.")


class WebhookDelivery(BaseModel):
    id: uuid.UUID
    webhook_id: str = Field(description="The `webhook-id` header: the same on every attempt.")
    type: str = Field(examples=["booking_confirmed"])
    status: Literal["pending", "delivered", "failed"]
    created_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime | None = Field(description="When it is tried next (pending only).")
    attempts: list[WebhookAttempt] = Field(description="Every attempt, oldest first.")

    @classmethod
    def of(cls, row: Any, attempts: list[Any]) -> WebhookDelivery:
        return cls(
            id=row.id,
            webhook_id=webhook_id(row.id),
            type=row.kind,
            status=row.status,
            created_at=row.created_at,
            delivered_at=row.delivered_at,
            next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
            attempts=[WebhookAttempt.model_validate(a, from_attributes=True) for a in attempts],
        )
