"""ASGI entry point: ``uvicorn auth.config.asgi:application --port 8001``.

Telemetry first (so Django's request spans exist before Django loads its middleware), then the
Django application wrapped with the lifespan that migrates the database and runs the relay.
"""

import logging
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "auth.config.settings")

from django.core.asgi import get_asgi_application  # noqa: E402
from opentelemetry.instrumentation.django import DjangoInstrumentor  # noqa: E402

from auth.config.env import load  # noqa: E402
from auth.core.lifespan import AuthApplication  # noqa: E402
from observability import configure_telemetry  # noqa: E402

env = load()
configure_telemetry("auth", log_level=env.log_level, log_format=env.log_format)
# Django logs every 4xx as a warning; client mistakes are not the server's. 5xx stay errors.
logging.getLogger("django.request").setLevel(logging.ERROR)
if not DjangoInstrumentor().is_instrumented_by_opentelemetry:
    DjangoInstrumentor().instrument(excluded_urls="health,ready")


def build_application(*, outbox_relay: bool | None = None) -> AuthApplication:
    return AuthApplication(
        get_asgi_application(),
        outbox_relay=env.outbox_relay if outbox_relay is None else outbox_relay,
    )


application = build_application()
