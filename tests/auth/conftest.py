"""Auth test set-up: pytest-django on the real PostgreSQL, inside the suite-wide test run.

Order matters. ``tests/conftest.py`` puts the run's environment (``DATABASE_PREFIX``,
``RABBITMQ_URL`` vhost...) in place in its ``pytest_configure``; Django must read its settings
only after that. So this file only names the settings module at import time and sets Django up
in a ``trylast`` ``pytest_configure`` (called after the root one, whether this conftest is loaded
at start-up (``pytest tests/auth``) or during collection (``pytest tests``)). The test database
is the service's own ``<run prefix>auth``, created and migrated by the service's real start-up
code (dropped with the run's other databases by ``tests/conftest.py``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "auth.config.settings")
# Development key generation, but into a private directory rather than the repository's .var/.
_KEYS_DIR = tempfile.mkdtemp(prefix="eb_auth_keys_")
os.environ["JWT_KEYS_DIR"] = _KEYS_DIR
os.environ.pop("JWT_PRIVATE_KEY", None)
os.environ.pop("JWT_PRIVATE_KEY_FILE", None)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    import django

    django.setup()


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_KEYS_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def django_db_setup(django_db_blocker: Any) -> None:
    """The run's own auth database, prepared exactly as the service prepares it at start-up."""
    from django.conf import settings
    from django.db import connections

    from auth.config.env import load
    from auth.config.settings.database import database_settings
    from auth.core import startup

    # Even if DJANGO_SETTINGS_MODULE was exported and settings were read before the run's
    # environment existed, never touch a database outside this run's prefix.
    settings.DATABASES["default"].update(database_settings(load()))
    assert settings.DATABASES["default"]["NAME"].startswith(os.environ["DATABASE_PREFIX"])
    connections.close_all()
    with django_db_blocker.unblock():
        startup.database_prepare()


def auth_client(app: Any, client: tuple[str, int] = ("127.0.0.1", 40000)) -> Any:
    """An HTTP client for the auth ASGI app; ``client`` is the peer address Django sees."""
    import httpx

    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=client), base_url="http://testserver"
    )


@pytest.fixture
def auth_app(transactional_db: Any) -> Any:
    """Auth's real ASGI application (Django + lifespan), without the in-process relay."""
    from auth.config.asgi import build_application

    return build_application(outbox_relay=False)


@pytest.fixture
async def client(auth_app: Any) -> AsyncIterator[Any]:
    async with auth_client(auth_app) as c:
        yield c
