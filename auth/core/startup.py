"""Start-up work of every auth process: the database exists and is migrated, the admin exists.

Safe when replicas start together: ``CREATE DATABASE`` tolerates losing the race (the kit's
:func:`ensure_database`) and migrations run under a PostgreSQL advisory lock, so the second
replica waits and then finds nothing left to do.
"""

from __future__ import annotations

import logging

import psycopg
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connections

from kit.db import ensure_database
from auth.config.env import load

log = logging.getLogger(__name__)

MIGRATION_LOCK = 0x6562_6175_7468  # "ebauth": one advisory lock id for auth's migrations


def database_prepare() -> None:
    """Create ``<prefix>auth`` if missing and apply every Django migration (idempotent)."""
    env = load()
    db = settings.DATABASES["default"]
    if env.database_name != db["NAME"]:
        raise ImproperlyConfigured(
            f"DATABASES names {db['NAME']!r} but the environment says {env.database_name!r}"
        )
    ensure_database(env)
    with psycopg.connect(
        host=db["HOST"],
        port=db["PORT"],
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname=db["NAME"],
        autocommit=True,
    ) as lock_conn:
        lock_conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            call_command("migrate", interactive=False, verbosity=0)
        finally:
            lock_conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    connections.close_all()


def admin_bootstrap() -> None:
    """ADMIN_EMAIL + ADMIN_PASSWORD set: make sure that admin exists (idempotent); either unset:
    no admin is created. An address of an existing non-admin account is refused (ERROR log)."""
    from auth.accounts.services import AdminEmailBelongsToAnotherAccount, admin_ensure

    if settings.ADMIN_EMAIL and settings.ADMIN_PASSWORD:
        try:
            admin_ensure(email=settings.ADMIN_EMAIL, password=settings.ADMIN_PASSWORD)
            log.info("admin account %s ensured", settings.ADMIN_EMAIL)
        except AdminEmailBelongsToAnotherAccount as exc:
            # Refusing must not stop the platform: the other services and existing admins work.
            log.error("admin account not ensured: %s", exc)
    connections.close_all()


def prepare() -> None:
    from auth.accounts.keys import key_ring

    key_ring()  # no usable signing key is a start-up failure, not a failure at first login
    database_prepare()
    admin_bootstrap()
