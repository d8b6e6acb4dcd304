"""The gateway's settings: where the services are, how tokens are checked, and its limits.

Every field is optional with a working local default; names are the environment variables
(``EVENTS_URL``, ``GATEWAY_RATE_LIMIT``, ``MAX_BODY_BYTES``...).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    environment: str = Field(default="development", description="development | test | production")
    gateway_port: int = Field(default=8000, description="Port of `python -m gateway`.")
    gateway_host: str = "127.0.0.1"
    forwarded_allow_ips: str | None = Field(
        default=None,
        description="Addresses or networks of the balancer(s) in front of the gateway, whose "
        "X-Forwarded-For uvicorn believes (the right-most entry not in this list is the client). "
        "Unset: none under `python -m gateway`; the uvicorn CLI reads it too. '*' is refused.",
    )

    # Upstream services (the path is forwarded unchanged: services serve the same prefixes).
    auth_url: str = "http://127.0.0.1:8001"
    events_url: str = "http://127.0.0.1:8002"
    booking_url: str = "http://127.0.0.1:8003"
    payments_url: str = "http://127.0.0.1:8004"
    notifications_url: str = "http://127.0.0.1:8005"
    analytics_url: str = "http://127.0.0.1:8006"

    # Access tokens are verified at the edge with the auth service's public keys.
    jwks_url: str | None = Field(default=None, description="Default: AUTH_URL + /auth/jwks.json")
    jwt_jwks: str | None = Field(default=None, description="A JWKS document inline (JSON).")
    jwt_issuer: str = "eventbooking-auth"
    jwt_audience: str = "eventbooking"

    # Limits.
    gateway_rate_limit: float = Field(
        default=100,
        ge=0,
        description="Requests per second per client (per user when authenticated, else per "
        "address); 0 turns the limit off. Each gateway worker process counts on its own.",
    )
    gateway_rate_burst: float | None = Field(
        default=None, description="Bucket size; default: one second's worth (at least 1)."
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=0)
    upstream_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Longest wait for an upstream's answer (and between "
        "two reads of its body) before 504.",
    )
    upstream_connect_timeout_seconds: float = Field(default=2.0, gt=0)
    upstream_max_connections: int = Field(default=1000, ge=1)
    # Below uvicorn's 5 s keep-alive, so the gateway never reuses a connection the service is
    # closing (which would fail a non-idempotent request).
    upstream_keepalive_seconds: float = 4.0
    ready_timeout_seconds: float = 2.0
    openapi_cache_seconds: float = 10.0

    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated origins (or a JSON list); '*' for any."
    )

    log_level: str = "INFO"
    log_format: str = Field(default="json", description="json | text")

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                return json.loads(value)
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _no_wildcard(cls, value: str | None) -> str | None:
        # uvicorn's '*' does not walk the list from the right: it takes the LEFT-most entry,
        # which the client writes itself, so every per-address limit would be its choice.
        if value and "*" in (part.strip() for part in value.split(",")):
            raise ValueError(
                "FORWARDED_ALLOW_IPS='*' would make the client's own X-Forwarded-For entry its "
                "address; list the balancer's addresses or networks instead"
            )
        return value

    @model_validator(mode="after")
    def _default_jwks_url(self) -> GatewaySettings:
        if not self.jwks_url:
            self.jwks_url = self.auth_url.rstrip("/") + "/auth/jwks.json"
        return self

    def upstream_urls(self) -> dict[str, str]:
        return {
            "auth": self.auth_url,
            "events": self.events_url,
            "booking": self.booking_url,
            "payments": self.payments_url,
            "notifications": self.notifications_url,
            "analytics": self.analytics_url,
        }

    @property
    def rate_burst(self) -> float:
        return self.gateway_rate_burst or max(1.0, self.gateway_rate_limit)
