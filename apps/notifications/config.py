"""Settings of the notifications service (environment variables, all optional)."""

from __future__ import annotations

import base64
from typing import Self

from cryptography.fernet import Fernet
from pydantic import Field, model_validator

from kit.settings import ServiceSettings

# Only ever used where ENVIRONMENT is development or test (see NotificationSettings).
_DEVELOPMENT_WEBHOOK_KEY = base64.urlsafe_b64encode(b"insecure-dev-only-webhook-key!!!").decode()


class NotificationSettings(ServiceSettings):
    # E-mail goes over real SMTP. Local runs: `python -m deploy.local.smtp_sink`.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = Field(default=False, description="Upgrade the connection with STARTTLS.")
    smtp_timeout_seconds: float = 10.0
    mail_from: str = "Event Booking <no-reply@eventbooking.local>"

    sms_provider: str = Field(default="log", description="log (the only built-in provider)")
    push_provider: str = Field(default="log", description="log (the only built-in provider)")

    # Delivery worker: a failed send is retried with exponential back-off, at most
    # `delivery_max_attempts` sends in all, then the notification is `failed`.
    delivery_worker: bool = Field(
        default=True, description="Run the delivery worker inside the service process."
    )
    delivery_max_attempts: int = Field(default=5, ge=1)
    delivery_backoff_seconds: float = Field(default=2.0, gt=0)
    delivery_max_backoff_seconds: float = Field(default=300.0, gt=0)
    delivery_poll_seconds: float = Field(default=0.5, gt=0)
    delivery_batch_size: int = Field(default=20, ge=1)
    # A notification for a user whose contact is not known yet waits this long (status
    # `pending_contact`) for their user_registered message, then is `failed`.
    contact_wait_seconds: float = Field(default=86_400.0, gt=0)

    # Webhooks (see docs/api.md): targets, the key their secrets are encrypted with, the worker.
    webhook_allowed_hosts: str = Field(
        default="",
        description="WEBHOOK_ALLOWED_HOSTS: comma-separated host or host:port targets allowed "
        "although they are loopback/private/link-local (development and tests only).",
    )
    webhook_encryption_key: str | None = Field(
        default=None,
        description="WEBHOOK_ENCRYPTION_KEY: a Fernet key (urlsafe base64 of 32 bytes) the "
        "endpoints' signing secrets are encrypted with. Required outside development/test.",
    )
    max_webhooks_per_owner: int = Field(
        default=20,
        ge=1,
        description="MAX_WEBHOOKS_PER_OWNER: endpoints one organizer or admin may have at once "
        "(each one costs a delivery per matching message); one more is a 409.",
    )
    webhook_worker: bool = Field(
        default=True, description="Run the webhook delivery worker inside the service process."
    )
    webhook_concurrency: int = Field(default=16, ge=1, description="Deliveries in flight at once.")
    webhook_per_endpoint: int = Field(
        default=2, ge=1, description="Deliveries in flight to one endpoint at once."
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Longest wait for an endpoint's answer, all included."
    )
    webhook_poll_seconds: float = Field(default=0.5, gt=0)
    webhook_first_retry_seconds: float = Field(default=5.0, gt=0)
    webhook_max_retry_seconds: float = Field(default=6 * 3600.0, gt=0)

    @model_validator(mode="after")
    def _webhook_key(self) -> Self:
        if self.webhook_encryption_key is None:
            if self.environment not in ("development", "test"):
                raise ValueError("WEBHOOK_ENCRYPTION_KEY must be set outside development.")
            self.webhook_encryption_key = _DEVELOPMENT_WEBHOOK_KEY
        Fernet(self.webhook_encryption_key)  # raises ValueError for a malformed key
        return self
