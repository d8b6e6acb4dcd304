"""Process entry point: ``uvicorn apps.events.main:app`` (HTTP + consumers + outbox relay)."""

from apps.events.bootstrap import build
from observability import configure_telemetry

service = build()
service.configure_process()
configure_telemetry(service.spec.name, log_level=service.settings.log_level, log_format=service.settings.log_format)
app = service.api
stream = service.stream  # `faststream docs gen apps.events.main:stream`
