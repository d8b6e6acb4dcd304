"""The service's own PostgreSQL database: ``<DATABASE_PREFIX>auth`` on ``DATABASE_URL``'s
server (default ``eb_auth``), with the same semantics as :class:`kit.settings.ServiceSettings`.
It is created if missing and migrated at start-up (:mod:`auth.core.startup`), not here."""

from typing import Any

from sqlalchemy.engine import make_url

from auth.config.env import AuthSettings
from auth.config.settings.base import ENV


def database_settings(env: AuthSettings) -> dict[str, Any]:
    url = make_url(env.database_url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": env.database_name,
        "USER": url.username or "postgres",
        "PASSWORD": url.password or "",
        "HOST": url.host or "127.0.0.1",
        "PORT": str(url.port or 5432),
        # A connection per request: under ASGI persistent connections are per thread and leak.
        "CONN_MAX_AGE": 0,
        "OPTIONS": {"application_name": env.service_name},
    }


DATABASES = {"default": database_settings(ENV)}
