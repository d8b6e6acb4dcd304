"""Django settings of the auth service, split by concern; every value comes from the
environment through :mod:`auth.config.env` (``DJANGO_SETTINGS_MODULE=auth.config.settings``)."""

from auth.config.settings.base import *  # noqa: F403
from auth.config.settings.database import *  # noqa: F403
from auth.config.settings.jwt import *  # noqa: F403
from auth.config.settings.logging import *  # noqa: F403
from auth.config.settings.openapi import *  # noqa: F403
from auth.config.settings.security import *  # noqa: F403
