"""Process entry point: ``uvicorn apps.booking.main:app --port 8003`` (HTTP + consumers +
outbox relay + hold-expiry sweeper)."""

from apps.booking.bootstrap import build
from observability import configure_telemetry

service = build()
service.configure_process()
configure_telemetry(service.spec.name, log_level=service.settings.log_level, log_format=service.settings.log_format)
app = service.api
stream = service.stream  # `faststream docs gen apps.booking.main:stream`
