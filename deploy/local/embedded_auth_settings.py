"""Django settings of the auth service in the embedded mode: the normal settings, with the
database on SQLite (the file the kit's settings name for ``auth`` under ``DATABASE_URL``)."""

from auth.config.settings import *  # noqa: F403
from auth.config.settings.base import ENV

if not ENV.database_url.startswith("sqlite"):
    raise RuntimeError("the embedded auth settings need a sqlite DATABASE_URL")

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": ENV.sqlalchemy_url.database,
        "CONN_MAX_AGE": 0,
        # One writer at a time, as for the other services (kit.db): wait for the lock
        # up front rather than fail a read-then-write transaction half-way.
        "OPTIONS": {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL",
        },
    }
}
