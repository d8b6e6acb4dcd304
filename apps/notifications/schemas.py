"""HTTP request and response bodies of the notifications API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from apps.notifications.domain import Channel, Notification, Status


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
