"""Logging is set up by observability.configure_telemetry (JSON lines with trace ids), called by
the process entry points (auth.config.asgi, auth.relay, manage.py); Django leaves it alone."""

from auth.config.settings.base import ENV

LOGGING_CONFIG = None
LOG_LEVEL = ENV.log_level
LOG_FORMAT = ENV.log_format
