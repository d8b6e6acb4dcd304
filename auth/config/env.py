"""The auth service's configuration, read from the environment like every other service's.

``AuthSettings`` extends the kit's :class:`ServiceSettings` (``DATABASE_URL``,
``DATABASE_PREFIX``, ``RABBITMQ_URL``, ``JWT_ISSUER``, ``JWT_AUDIENCE``, ``OUTBOX_RELAY``,
``LOG_LEVEL``...) with what only auth needs. The Django settings modules read from it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from kit.settings import ServiceSettings

REPO_ROOT = Path(__file__).resolve().parents[2]


class AuthSettings(ServiceSettings):
    service_name: str = "auth"
    http_port: int = 8001

    # --- Django ----------------------------------------------------------------------------
    django_secret_key: str | None = Field(
        default=None, description="Required outside development/test (Django's SECRET_KEY)."
    )
    django_debug: bool = False
    allowed_hosts: str = Field(
        default="*", description="Comma-separated Host names (the service sits behind the gateway)."
    )

    # --- signing keys ----------------------------------------------------------------------
    jwt_private_key: str | None = Field(
        default=None, description="PEM of the signing key (RSA -> RS256, Ed25519 -> EdDSA)."
    )
    jwt_private_key_file: str | None = Field(default=None, description="Path of that PEM.")
    jwt_key_id: str | None = Field(
        default=None,
        description="kid of the signing key (1-64 of A-Z a-z 0-9 - _); default: its RFC 7638 "
        "thumbprint.",
    )
    jwt_extra_public_keys: str = Field(
        default="",
        description="Comma-separated PEM files of earlier keys still accepted and published in "
        "the JWKS (key rotation): `path` publishes a key under its thumbprint, `kid=path` under "
        "`kid` (the JWT_KEY_ID it signed with).",
    )
    jwt_keys_dir: str = Field(
        default=str(REPO_ROOT / ".var" / "keys"),
        description="Development only: where a key pair is generated once when none is configured.",
    )
    jwt_access_ttl_seconds: int = Field(default=15 * 60, ge=30)
    jwt_refresh_ttl_seconds: int = Field(default=14 * 24 * 3600, ge=60)

    # --- accounts ----------------------------------------------------------------------------
    admin_email: str | None = None
    admin_password: str | None = None

    # --- login brute-force protection ------------------------------------------------------
    login_max_failures_per_account_address: int = Field(
        default=5, ge=1, description="Failed logins per (account, client address) per window."
    )
    login_max_failures_per_account: int = Field(
        default=100,
        ge=1,
        description="Failed logins per account from all addresses together per window (a ceiling "
        "on distributed guessing; much larger, so one attacker cannot lock the owner out).",
    )
    login_max_failures_per_address: int = Field(default=20, ge=1)
    login_failure_window_seconds: int = Field(default=15 * 60, ge=1)
    # --- registration limits (0 turns one off) --------------------------------------------------
    registrations_per_address_per_hour: int = Field(
        default=20, ge=0, description="Registrations per client address per hour; 0: no limit."
    )
    registrations_per_minute: int = Field(
        default=600,
        ge=0,
        description="Registrations from all addresses together per minute; 0: no limit.",
    )

    # --- admission (auth.core.admission): Argon2 work at once per process ---------------------
    register_concurrency: int = Field(
        default=2, ge=0, description="Registrations handled at once per process (0: unbounded)."
    )
    login_concurrency: int = Field(
        default=4, ge=0, description="Logins handled at once per process (0: unbounded)."
    )
    admission_wait_seconds: float = Field(
        default=5.0, gt=0, description="How long a request waits for its lane before a 503."
    )

    trusted_proxies: str = Field(
        default="127.0.0.1,::1",
        description="Comma-separated addresses/networks whose X-Forwarded-For is believed.",
    )

    @property
    def is_development(self) -> bool:
        return self.environment in ("development", "test")


def comma_list(value: str) -> list[str]:
    """The items of a comma-separated setting, stripped, empty ones left out."""
    return [item.strip() for item in value.split(",") if item.strip()]


def load() -> AuthSettings:
    return AuthSettings(service_name="auth")
