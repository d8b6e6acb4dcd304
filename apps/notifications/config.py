"""Settings of the notifications service (environment variables, all optional)."""

from __future__ import annotations

from pydantic import Field

from kit.settings import ServiceSettings


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
