"""Settings every service reads from its environment (names as in the public contract)."""

from __future__ import annotations

from functools import cached_property

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

API_VERSION = "1.0.0"  # the public HTTP API's version, in every OpenAPI and AsyncAPI document


class ServiceSettings(BaseSettings):
    """Configuration of one service. Every field is optional and has a working local default."""

    model_config = SettingsConfigDict(extra="ignore", frozen=False)

    service_name: str = Field(default="service", description="Set by each service.")
    environment: str = Field(default="development", description="development | test | production")

    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/"
    database_prefix: str = Field(
        default="eb_", description="Each service's database is <prefix><service>, e.g. eb_events."
    )
    database_pool_size: int = Field(
        default=6,
        ge=1,
        description="DATABASE_POOL_SIZE: connections for requests and consumers; "
        "a process running the outbox relay opens 2 more of its own.",
    )

    # Tokens are verified with the auth service's public keys only.
    jwks_url: str = "http://127.0.0.1:8001/auth/jwks.json"
    jwt_jwks: str | None = Field(
        default=None, description="A JWKS document inline (JSON); used instead of jwks_url if set."
    )
    jwt_issuer: str = "eventbooking-auth"
    jwt_audience: str = "eventbooking"

    process_niceness: int | None = Field(
        default=None,
        ge=0,
        le=19,
        description="PROCESS_NICENESS: the process's scheduler "
        "niceness (0-19); unset: 10 for analytics and notifications, 0 for the others.",
    )

    bindings_reconcile_seconds: float = Field(
        default=60.0,
        gt=0,
        description="BINDINGS_RECONCILE_SECONDS: how often a service unbinds the queues it "
        "needs only in some states (webhook-only kinds, voucher uses) while nothing needs them "
        "(kit.bindings); they are bound again as soon as something does.",
    )

    log_level: str = "INFO"
    log_format: str = Field(default="json", description="json | text")

    # Outbox relay: run it inside the service process (default) or only as its own process.
    outbox_relay: bool = True
    outbox_batch_size: int = 500
    outbox_poll_seconds: float = 1.0
    outbox_handoff: bool = Field(
        default=True,
        description="OUTBOX_HANDOFF: the in-process relay publishes rows as their "
        "transaction commits (no read-back); off: only its polling rounds publish.",
    )
    outbox_handoff_grace_seconds: float = Field(
        default=5.0,
        gt=0,
        description="OUTBOX_HANDOFF_GRACE_SECONDS: rows younger than this are "
        "left to the hand-off path; older ones (a crash, a failed publish) to the polling rounds.",
    )

    # Bounded retries of a failing message before it is dead-lettered (delivery limit is in
    # contracts.topology); this is the longest pause before a redelivery.
    consumer_prefetch: int = 64
    consumer_max_backoff_seconds: float = 2.0

    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=0,
        description="MAX_BODY_BYTES: the largest request body a "
        "service reads (413 past it), the gateway's cap too: a caller inside the network that "
        "bypasses the gateway cannot make a service buffer more.",
    )

    http_host: str = "127.0.0.1"
    http_port: int = 8000

    @cached_property
    def database_name(self) -> str:
        return f"{self.database_prefix}{self.service_name}"

    @cached_property
    def sqlalchemy_url(self) -> URL:
        """The async SQLAlchemy URL of this service's own database."""
        url = make_url(self.database_url)
        if url.drivername.startswith("sqlite"):
            url = url.set(drivername="sqlite+aiosqlite")
            if url.database and url.database.endswith("/"):
                # A directory: each service gets its own file in it, <prefix><service>.db.
                url = url.set(database=f"{url.database}{self.database_name}.db")
            return url
        return url.set(drivername="postgresql+asyncpg", database=self.database_name)

    @cached_property
    def maintenance_url(self) -> URL:
        """The server's maintenance database, used to create this service's database."""
        return make_url(self.database_url).set(drivername="postgresql", database="postgres")
