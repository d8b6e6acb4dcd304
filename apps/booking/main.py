"""Process entry point: ``uvicorn apps.booking.main:app --port 8003`` (HTTP + consumers +
outbox relay + hold-expiry sweeper)."""

from apps.booking.bootstrap import build
from kit.process import process_service

service = process_service(build)
app, stream = service.api, service.stream  # `faststream docs gen apps.booking.main:stream`
